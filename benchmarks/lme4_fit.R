# Time lme4 on InstEval; print one line of JSON.
#   Rscript benchmarks/lme4_fit.R sparsemixed/datasets/data/InstEval.csv ["y ~ ..."]
# total: elapsed time of lmer(); build: lFormula() + mkLmerDevfun() (timed separately);
# fit = total - build; eval_ms: median of 20 calls of the deviance function at the optimum.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
csv <- if (length(args) >= 1) args[1] else "sparsemixed/datasets/data/InstEval.csv"
form <- as.formula(if (length(args) >= 2) args[2] else
  "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)")

d <- read.csv(csv)
for (v in intersect(c("s", "d", "studage", "lectage", "service", "dept"), names(d))) d[[v]] <- factor(d[[v]])

elapsed <- function(expr) (proc.time() - expr)[["elapsed"]]

t0 <- proc.time()
fit <- lmer(form, d, REML = TRUE)
total <- elapsed(t0)

t0 <- proc.time()
lf <- lFormula(form, d, REML = TRUE)
devfun <- do.call(mkLmerDevfun, lf)
build <- elapsed(t0)

theta <- getME(fit, "theta")
eval_s <- replicate(20, { t0 <- proc.time(); devfun(theta); elapsed(t0) })

cat(toJSON(list(
  rows = nrow(d), q = nrow(lf$reTrms$Zt), build = build, fit = total - build,
  evals = fit@optinfo$feval, eval_ms = 1000 * median(eval_s), total = total,
  objective = if (isREML(fit)) REMLcrit(fit) else deviance(fit), theta = unname(theta),
  optimizer = fit@optinfo$optimizer
), auto_unbox = TRUE, digits = NA), "\n")
