# Reference for sparsemixed/inference/{ddf,satterthwaite,kenward_roger}.py: lmerTest's
# t-tests and F-tests of the fixed effects with Satterthwaite's and Kenward-Roger's
# (pbkrtest) denominator degrees of freedom.
#
# For every model below it records, from lmerTest 3.1-3 / pbkrtest / lme4 1.1-31:
#   lme4         coef(summary(<lmerMod>))          Estimate, Std. Error, t value
#   satterthwaite summary(fit)$coefficients         ... df, t value, Pr(>|t|)
#   kenward_roger summary(fit, ddf = "Kenward-Roger")$coefficients   (REML fits only;
#                 lmerTest refuses ML fits, the message is recorded instead)
#   anova_3_satterthwaite, anova_1_satterthwaite, anova_3_kenward_roger,
#   anova_1_kenward_roger   anova(fit, type = ., ddf = .)
#   vcov_adj     pbkrtest::vcovAdj(fit)             (Kenward-Roger's adjusted vcov(beta))
#   vcov_varpar  fit@vcov_varpar (order theta..., sigma), Jac = fit@Jac_list
# plus lme4's theta and sigma, so the Python side can be evaluated at lme4's optimum.
#
# sleepstudy2 gets a derived 3-level between-subject factor (also built by the tests):
#   grp = c("a", "b", "c")[as.integer(as.character(Subject)) %% 3 + 1]
#
# Run from the repository root:
#   Rscript tests/reference/make_ddf_reference.R
# (needs lme4, lmerTest, pbkrtest, jsonlite).  Writes tests/reference/lmertest_ddf.json.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(jsonlite)
})

root <- "."
factors <- list(sleepstudy = "Subject", sleepstudy2 = c("Subject", "phase", "grp"),
                Penicillin = c("plate", "sample"), Pastes = c("batch", "cask", "sample"))

load_data <- function(name) {
  df <- read.csv(file.path(root, "sparsemixed/datasets/data", paste0(name, ".csv")))
  if (name == "sleepstudy2")
    df$grp <- c("a", "b", "c")[as.integer(as.character(df$Subject)) %% 3 + 1]
  for (v in factors[[name]]) df[[v]] <- factor(df[[v]])
  df
}

models <- list(
  list(name = "sleepstudy_reml", data = "sleepstudy",
       formula = "Reaction ~ Days + (Days|Subject)", reml = TRUE),
  list(name = "sleepstudy2_factor", data = "sleepstudy2",
       formula = "Reaction ~ Days * grp + phase + (1|Subject)", reml = TRUE),
  list(name = "sleepstudy2_factor_ml", data = "sleepstudy2",
       formula = "Reaction ~ Days * grp + phase + (1|Subject)", reml = FALSE),
  list(name = "sleepstudy2_slope", data = "sleepstudy2",
       formula = "Reaction ~ Days + grp + (Days|Subject)", reml = TRUE),
  list(name = "sleepstudy2_factorial", data = "sleepstudy2",
       formula = "Reaction ~ Days + grp * phase + (1|Subject) + (0 + Days|Subject)", reml = TRUE),
  list(name = "penicillin_crossed", data = "Penicillin",
       formula = "diameter ~ 1 + (1|plate) + (1|sample)", reml = TRUE),
  list(name = "pastes_nested", data = "Pastes",
       formula = "strength ~ 1 + (1|batch/cask)", reml = TRUE)
)

tab <- function(m) {
  m <- as.data.frame(m)
  list(rows = I(rownames(m)), cols = I(colnames(m)), values = unname(as.matrix(m)))
}

out <- list()
for (m in models) {
  dat <- load_data(m$data)
  fit <- lmerTest::lmer(as.formula(m$formula), dat, REML = m$reml)
  res <- list(data = m$data, formula = m$formula, reml = m$reml,
              theta = I(unname(getME(fit, "theta"))), sigma = sigma(fit),
              fixef_names = I(names(fixef(fit))),
              lme4 = tab(coef(summary(as(fit, "lmerMod")))),
              satterthwaite = tab(summary(fit)$coefficients),
              anova_3_satterthwaite = tab(anova(fit, type = 3)),
              anova_1_satterthwaite = tab(anova(fit, type = 1)),
              vcov_varpar = unname(fit@vcov_varpar),
              jacobian = lapply(fit@Jac_list, function(J) unname(J)))
  if (m$reml) {
    res$kenward_roger <- tab(summary(fit, ddf = "Kenward-Roger")$coefficients)
    res$anova_3_kenward_roger <- tab(anova(fit, type = 3, ddf = "Kenward-Roger"))
    res$anova_1_kenward_roger <- tab(anova(fit, type = 1, ddf = "Kenward-Roger"))
    res$vcov_adj <- unname(as.matrix(vcovAdj(fit)))
  } else {
    msg <- tryCatch({summary(fit, ddf = "Kenward-Roger"); "no error"},
                    error = function(e) conditionMessage(e),
                    warning = function(w) conditionMessage(w))
    res$kenward_roger_error <- msg
  }
  cat(sprintf("%-24s df: %s\n", m$name,
              paste(signif(summary(fit)$coefficients[, "df"], 6), collapse = " ")))
  out[[m$name]] <- res
}
out[["_meta"]] <- list(R = R.version.string, lme4 = format(packageVersion("lme4")),
                       lmerTest = format(packageVersion("lmerTest")),
                       pbkrtest = format(packageVersion("pbkrtest")))
write_json(out, file.path(root, "tests/reference/lmertest_ddf.json"), digits = NA,
           auto_unbox = TRUE, pretty = TRUE, na = "null")
