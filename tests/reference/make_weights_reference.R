# lme4's answers for prior weights (residual variance sigma^2 / w) on unbalanced data.
#   Rscript tests/reference/make_weights_reference.R   (from the repository root)
# The weights are a deterministic function of the data, recomputed by the tests:
#   sleepstudy2:  w = 0.5 + 0.5 * (Days %% 4)          Penicillin:  w = 1 + (as.integer(plate) %% 3)
suppressMessages({library(lme4); library(jsonlite)})
dd <- "sparsemixed/datasets/data"
s2 <- read.csv(file.path(dd, "sleepstudy2.csv"), stringsAsFactors = TRUE)
s2$Subject <- factor(s2$Subject)
s2$w <- 0.5 + 0.5 * (s2$Days %% 4)
pe <- read.csv(file.path(dd, "Penicillin.csv"), stringsAsFactors = TRUE)
pe$w <- 1 + (as.integer(pe$plate) %% 3)
cases <- list(
  list(name = "sleepstudy2_weighted_reml", data = s2, formula = "Reaction ~ Days + (Days|Subject)", reml = TRUE),
  list(name = "sleepstudy2_weighted_ml", data = s2, formula = "Reaction ~ Days + (Days|Subject)", reml = FALSE),
  list(name = "penicillin_weighted", data = pe, formula = "diameter ~ 1 + (1|plate) + (1|sample)", reml = TRUE)
)
out <- list()
for (cs in cases) {
  fit <- lmer(as.formula(cs$formula), data = cs$data, REML = cs$reml, weights = w,
              control = lmerControl(optCtrl = list(ftol_abs = 1e-12, xtol_abs = 1e-10)))
  re <- as.data.frame(ranef(fit, condVar = TRUE))
  re$grp <- as.character(re$grp); re$term <- as.character(re$term); re$grpvar <- as.character(re$grpvar)
  out[[cs$name]] <- list(
    formula = cs$formula, reml = cs$reml,
    fixef = as.list(fixef(fit)), fixef_se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
    theta = unname(getME(fit, "theta")), sigma = sigma(fit),
    objective = if (cs$reml) REMLcrit(fit) else deviance(fit),
    loglik = as.numeric(logLik(fit)), ranef = re,
    fitted = unname(fitted(fit)), resid_pearson = unname(residuals(fit, type = "pearson")))
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/lme4_weights.json")
