# Time lme4 on a table written by benchmarks/scale.py; print one line of JSON.
#   Rscript benchmarks/lme4_scale.R table.csv "y ~ x + (1|user) + (1|item)" [REML: FALSE]
# Columns user, item/movie (integer codes, made factors here), x (if any), y.
# total: elapsed time of lmer(); build: lFormula() + mkLmerDevfun() (timed separately);
# fit = total - build; eval_ms: median of up to 20 calls of the deviance function at the
# optimum (at least 3, stopping after 3 s).  ML by default, as benchmarks/scale.py.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
csv <- args[1]
form <- as.formula(if (length(args) >= 2) args[2] else "y ~ x + (1|user) + (1|item)")
reml <- if (length(args) >= 3) as.logical(args[3]) else FALSE

d <- read.csv(csv)
groups <- intersect(c("user", "item", "movie"), names(d))
for (v in groups) d[[v]] <- factor(d[[v]])

elapsed <- function(t0) (proc.time() - t0)[["elapsed"]]

t0 <- proc.time()
fit <- lmer(form, d, REML = reml)
total <- elapsed(t0)

t0 <- proc.time()
lf <- lFormula(form, d, REML = reml)
devfun <- do.call(mkLmerDevfun, lf)
build <- elapsed(t0)

theta <- getME(fit, "theta")
eval_s <- c()
start <- proc.time()
while (length(eval_s) < 20 && (length(eval_s) < 3 || elapsed(start) < 3)) {
  t0 <- proc.time(); devfun(theta); eval_s <- c(eval_s, elapsed(t0))
}
L <- getME(fit, "L")
nnz_L <- tryCatch(length(as(L, "CsparseMatrix")@x), error = function(e) NA)

cat(toJSON(list(
  rows = nrow(d), levels = unname(sapply(groups, function(v) nlevels(d[[v]]))),
  q = nrow(lf$reTrms$Zt), build = build, fit = total - build, evals = fit@optinfo$feval,
  eval_ms = 1000 * median(eval_s), n_eval = length(eval_s), total = total,
  objective = if (isREML(fit)) REMLcrit(fit) else deviance(fit), theta = unname(theta),
  sigma = sigma(fit), fixef = as.list(fixef(fit)), nnz_L = nnz_L,
  optimizer = fit@optinfo$optimizer
), auto_unbox = TRUE, digits = NA), "\n")
