# One (tool, case) of benchmarks/peers.py in R; prints one line of JSON.
#   Rscript benchmarks/peers_fit.R lme4|glmmTMB data.csv "y ~ ..." TRUE|FALSE factor,columns [repeat_below_s]
# The CSV is read first (the listed columns made factors), not timed. Then the fit,
#   lme4:    lmer(formula, d, REML = REML)
#   glmmTMB: glmmTMB(formula, d, REML = REML)      (its defaults: one thread, nlminb)
# is timed by wall clock; a fit that took under repeat_below_s seconds (default 5) is
# repeated, up to three fits in all, and "seconds" is the best, "first" the first.
# objective: lme4's REMLcrit() / deviance(); glmmTMB's -2 logLik() (its REML log-likelihood
# is on lme4's scale: sleepstudy 1743.628 both).
args <- commandArgs(trailingOnly = TRUE)
tool <- args[1]; csv <- args[2]; form <- as.formula(args[3]); reml <- as.logical(args[4])
factors <- if (length(args) >= 5 && nzchar(args[5])) strsplit(args[5], ",")[[1]] else character(0)
repeat_below <- if (length(args) >= 6) as.numeric(args[6]) else 5
out <- function(x) cat(jsonlite::toJSON(x, auto_unbox = TRUE, digits = NA, null = "null"), "\n", sep = "")
if (!requireNamespace(tool, quietly = TRUE)) {
  out(list(error = paste0("R package ", tool, " not installed (apt-get install r-cran-", tolower(tool), ")")))
  quit(status = 0)
}
suppressPackageStartupMessages(library(tool, character.only = TRUE))

d <- if (requireNamespace("data.table", quietly = TRUE)) {
  as.data.frame(data.table::fread(csv, colClasses = list(character = factors), showProgress = FALSE))
} else read.csv(csv, colClasses = setNames(rep("character", length(factors)), factors))
for (v in factors) d[[v]] <- factor(d[[v]])

one_fit <- function() {
  notes <- character(0)
  t0 <- Sys.time()
  fit <- withCallingHandlers(
    if (tool == "lme4") lmer(form, d, REML = reml) else glmmTMB(form, d, REML = reml),
    warning = function(w) { notes <<- c(notes, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(w) { notes <<- c(notes, trimws(conditionMessage(w))); invokeRestart("muffleMessage") })
  list(fit = fit, seconds = as.numeric(Sys.time()) - as.numeric(t0), notes = notes)
}
r <- tryCatch(one_fit(), error = function(e) e)
if (inherits(r, "error")) { out(list(error = conditionMessage(r))); quit(status = 0) }
times <- r$seconds
while (length(times) < 3 && max(times) < repeat_below) times <- c(times, one_fit()$seconds)
fit <- r$fit
if (tool == "lme4") {
  objective <- if (isREML(fit)) REMLcrit(fit) else deviance(fit)
  evals <- fit@optinfo$feval
  converged <- length(fit@optinfo$conv$lme4$messages) == 0
} else {
  objective <- -2 * as.numeric(logLik(fit))
  evals <- unname(fit$fit$evaluations[["function"]])
  converged <- fit$fit$convergence == 0 && isTRUE(fit$sdr$pdHess)
}
out(list(rows = nrow(d), nobs = nobs(fit), seconds = min(times), first = times[1], times = times,
         objective = objective, evals = evals, converged = converged, notes = I(unique(r$notes)),
         version = as.character(packageVersion(tool))))
