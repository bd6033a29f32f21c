# lme4's side of benchmarks/small_panel.py: a persistent process that times lmer() fits
# on request, so that R's start-up and the CSV reading are not counted.
#   Rscript benchmarks/panel_lme4.R benchmarks/panel.tsv benchmarks/.cache/panel
# Reads every data set of the panel first (the CSVs of panel_export.R, the columns listed
# in <stem>.factors made factors), prints one JSON line {"ready": ...}, then reads model
# names from stdin, one a line; for each it times one
#     lmer(as.formula(formula), data, REML = REML)
# (wall clock, Sys.time()) and prints one JSON line: name, seconds, objective (REMLcrit for
# REML fits, deviance for ML: lme4's convention), rows, q, feval, optimizer, the warnings
# and messages lme4 gave (e.g. "boundary (singular) fit"), or error. "quit" ends it.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
panel <- read.delim(if (length(args) >= 1) args[1] else "benchmarks/panel.tsv",
                    stringsAsFactors = FALSE, quote = "")
dir <- if (length(args) >= 2) args[2] else "benchmarks/.cache/panel"

data <- list()
for (ds in unique(panel$dataset)) {
  stem <- file.path(dir, sub("::", "_", ds, fixed = TRUE))
  factors <- readLines(paste0(stem, ".factors"))
  d <- read.csv(paste0(stem, ".csv"), colClasses = setNames(rep("character", length(factors)), factors))
  for (v in factors) d[[v]] <- factor(d[[v]])
  data[[ds]] <- d
}
rownames(panel) <- panel$name
out <- function(x) { cat(toJSON(x, auto_unbox = TRUE, digits = NA, null = "null"), "\n", sep = ""); flush(stdout()) }
out(list(ready = TRUE, models = nrow(panel), lme4 = as.character(packageVersion("lme4"))))

con <- file("stdin", open = "r")
repeat {
  name <- readLines(con, n = 1)
  if (!length(name) || name == "quit") break
  if (!name %in% panel$name) { out(list(name = name, error = "unknown model")); next }
  m <- panel[name, ]
  d <- data[[m$dataset]]
  reml <- as.logical(m$REML)
  notes <- character(0)
  fit <- NULL
  t0 <- Sys.time()
  err <- tryCatch(withCallingHandlers(
    fit <- lmer(as.formula(m$formula), d, REML = reml),
    warning = function(w) { notes <<- c(notes, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(w) { notes <<- c(notes, trimws(conditionMessage(w))); invokeRestart("muffleMessage") }),
    error = function(e) conditionMessage(e))
  seconds <- as.numeric(Sys.time()) - as.numeric(t0)
  if (is.null(fit)) { out(list(name = name, error = as.character(err))); next }
  out(list(name = name, seconds = seconds,
           objective = if (isREML(fit)) REMLcrit(fit) else deviance(fit),
           rows = nobs(fit), q = nrow(getME(fit, "Zt")), feval = fit@optinfo$feval,
           optimizer = fit@optinfo$optimizer, theta = unname(getME(fit, "theta")),
           notes = I(unique(notes))))
}
