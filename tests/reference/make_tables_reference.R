# Reference for the tables people report (tests/test_tables.py):
#
#   summary   lmerTest's summary(fit)$coefficients (Satterthwaite; also ddf = "Kenward-Roger")
#             and lme4's coef(summary(<lmerMod>)); glmer's coef(summary(fit)) (Wald z); and
#             each as printed (capture.output(print(summary(fit))))
#   anova     lmerTest's anova(fit, type = 1, 2, 3) (Satterthwaite; type 2 also Kenward-Roger)
#   ranova    lmerTest's ranova(fit): LRT for each random-effects term, a vector term
#             (1 + x | g) reduced to (1 | g); rows, npar, logLik, AIC, LRT, Df, Pr(>Chisq)
#   drop1     lmerTest's drop1(fit) (Satterthwaite and Kenward-Roger F tests), lme4's
#             drop1(fit, test = "Chisq") (ML refits) for lmer and glmer fits, and car's
#             Anova(glmer fit, type = 2) (Wald chi-square) for the GLMM's Wald variant
#   update    R's update.formula(old, new) for a list of (old, new) pairs (deparsed), and
#             logLik of update(fit, . ~ . - term) and update(fit, data = subset)
#
# The data are simulated here (set.seed below) and written into the JSON (column "data"),
# unbalanced on purpose: unequal group sizes, unequal cells of the factors A, B, D, a
# crossed (subj x item) and a nested (school / class) structure.
#
# Run from the repository root:
#   Rscript tests/reference/make_tables_reference.R
# (needs lme4, lmerTest, pbkrtest, car, jsonlite).  Writes tests/reference/lmertest_tables.json.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(car)
  library(jsonlite)
})

# ---- data -----------------------------------------------------------------------------
set.seed(20240611)
n <- 420
nsubj <- 30
nitem <- 16
subj_p <- rexp(nsubj); subj_p <- subj_p / sum(subj_p)          # unequal group sizes
d <- data.frame(
  subj = sample(sprintf("s%02d", 1:nsubj), n, replace = TRUE, prob = subj_p),
  item = sample(sprintf("i%02d", 1:nitem), n, replace = TRUE),
  school = sample(sprintf("sch%d", 1:8), n, replace = TRUE, prob = (1:8) / 36),
  class = sample(c("c1", "c2", "c3"), n, replace = TRUE, prob = c(0.5, 0.3, 0.2)),
  A = sample(c("a1", "a2", "a3"), n, replace = TRUE, prob = c(0.5, 0.3, 0.2)),
  B = sample(c("b1", "b2"), n, replace = TRUE, prob = c(0.65, 0.35)),
  D = sample(c("d1", "d2", "d3", "d4"), n, replace = TRUE, prob = c(0.1, 0.2, 0.3, 0.4)),
  x = round(rnorm(n, 2, 1), 3),
  z = round(runif(n, -1, 1), 3),
  stringsAsFactors = FALSE)
us <- setNames(rnorm(nsubj, 0, 1.2), sprintf("s%02d", 1:nsubj))
usx <- setNames(rnorm(nsubj, 0, 0.5), sprintf("s%02d", 1:nsubj))
ui <- setNames(rnorm(nitem, 0, 0.8), sprintf("i%02d", 1:nitem))
usch <- setNames(rnorm(8, 0, 1), sprintf("sch%d", 1:8))
ucl <- rnorm(24, 0, 0.6); names(ucl) <- as.vector(outer(sprintf("sch%d", 1:8), c("c1", "c2", "c3"), paste, sep = ":"))
eA <- c(a1 = 0, a2 = 0.8, a3 = -0.5); eB <- c(b1 = 0, b2 = 0.6); eD <- c(d1 = 0, d2 = 0.3, d3 = -0.2, d4 = 0.4)
eta <- 1 + eA[d$A] + eB[d$B] + eD[d$D] + 0.5 * d$x - 0.3 * d$z + 0.4 * (d$A == "a2") * (d$B == "b2") +
  0.3 * (d$A == "a3") * d$x + us[d$subj] + usx[d$subj] * (d$x - 2) + ui[d$item] + usch[d$school] +
  ucl[paste(d$school, d$class, sep = ":")]
d$y <- round(unname(eta + rnorm(n, 0, 1)), 4)
lin <- -0.5 + 0.6 * (d$A == "a2") - 0.4 * (d$A == "a3") + 0.5 * (d$x - 2) + us[d$subj] * 0.6 + ui[d$item] * 0.5
d$ybin <- rbinom(n, 1, plogis(unname(lin)))
d$ycount <- rpois(n, exp(unname(0.3 + 0.2 * (d$A == "a2") + 0.25 * d$x + 0.4 * ui[d$item] + 0.3 * us[d$subj])))
fac <- c("subj", "item", "school", "class", "A", "B", "D")
df <- d
for (v in fac) df[[v]] <- factor(df[[v]])

tab <- function(m) {
  m <- as.data.frame(m)
  list(rows = I(rownames(m)), cols = I(colnames(m)), values = unname(as.matrix(m)))
}
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-3, rhoend = 1e-10, maxfun = 1e5))
gctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))

# ---- linear models: summary, anova 1/2/3, drop1, ranova ---------------------------------
lmms <- list(
  crossed_factors = list(formula = "y ~ A * B + x + (1 | subj) + (1 | item)", reml = TRUE),
  crossed_factors_ml = list(formula = "y ~ A * B + x + (1 | subj) + (1 | item)", reml = FALSE),
  slopes_numeric = list(formula = "y ~ A * x + z + (1 + x | subj)", reml = TRUE),
  nested_threeway = list(formula = "y ~ A * B * x + (1 | school/class)", reml = TRUE),
  numeric_interaction = list(formula = "y ~ x * z + D + (1 | subj) + (1 | item)", reml = TRUE),
  contained_numeric = list(formula = "y ~ A + A:x + B + (1 | subj)", reml = TRUE),
  two_factors = list(formula = "y ~ A * D + (1 | item)", reml = TRUE)
)
out <- list(data = d, lmm = list(), ranova = list(), glmm = list(), update = list())
for (nm in names(lmms)) {
  m <- lmms[[nm]]
  fit <- lmerTest::lmer(as.formula(m$formula), df, REML = m$reml, control = ctrl)
  res <- list(formula = m$formula, reml = m$reml,
              theta = I(unname(getME(fit, "theta"))), sigma = sigma(fit), logLik = c(logLik(fit)),
              fixef_names = I(names(fixef(fit))),
              lme4 = tab(coef(summary(as(fit, "lmerMod")))),
              satterthwaite = tab(summary(fit)$coefficients),
              anova_1 = tab(anova(fit, type = 1)),
              anova_2 = tab(anova(fit, type = 2)),
              anova_3 = tab(anova(fit, type = 3)),
              drop1 = tab(drop1(fit)),
              drop1_lme4 = tab(drop1(as(fit, "lmerMod"), test = "Chisq")))
  res$printed <- I(capture.output(print(summary(fit))))
  res$printed_lme4 <- I(capture.output(print(summary(as(fit, "lmerMod")))))
  if (m$reml) {
    res$kenward_roger <- tab(summary(fit, ddf = "Kenward-Roger")$coefficients)
    res$printed_kenward_roger <- I(capture.output(print(summary(fit, ddf = "Kenward-Roger"))))
    res$anova_2_kenward_roger <- tab(anova(fit, type = 2, ddf = "Kenward-Roger"))
    res$drop1_kenward_roger <- tab(drop1(fit, ddf = "Kenward-Roger"))
  }
  cat(sprintf("%-22s type-2 DenDF %s\n", nm, paste(signif(anova(fit, type = 2)$DenDF, 5), collapse = " ")))
  out$lmm[[nm]] <- res
}

# drop1 of a rank-deficient model: A2 merges A's levels a1 and a3, so A + A2 is aliased
# (lme4 drops A2's column; lmerTest tests the reduced models' difference: A 1 df, A2 none)
d2 <- df
d2$A2 <- factor(ifelse(d2$A == "a3", "a1", as.character(d2$A)))
fit <- lmerTest::lmer(y ~ A + A2 + x + (1 | subj), d2, control = ctrl)
out$rank_deficient <- list(formula = "y ~ A + A2 + x + (1 | subj)", reml = TRUE,
                           dropped = I(attr(model.matrix(fit), "col.dropped")), drop1 = tab(drop1(fit)))

# ranova: one random-effects term at a time (lmerTest's reduce.terms = TRUE)
ranovas <- list(
  slope_and_crossed = list(formula = "y ~ x + (1 + x | subj) + (1 | item)", reml = TRUE),
  slope_and_crossed_ml = list(formula = "y ~ x + (1 + x | subj) + (1 | item)", reml = FALSE),
  double_bar = list(formula = "y ~ x + (x || subj)", reml = TRUE),
  nested = list(formula = "y ~ A + (1 | school/class)", reml = TRUE),
  single_to_lm = list(formula = "y ~ x + B + (1 | subj)", reml = TRUE),
  single_to_lm_ml = list(formula = "y ~ x + B + (1 | subj)", reml = FALSE),
  two_slopes = list(formula = "y ~ x + z + (1 + x + z | subj)", reml = TRUE)
)
for (nm in names(ranovas)) {
  m <- ranovas[[nm]]
  fit <- lmerTest::lmer(as.formula(m$formula), df, REML = m$reml, control = ctrl)
  r <- ranova(fit)
  out$ranova[[nm]] <- list(formula = m$formula, reml = m$reml, table = tab(r),
                           reduced = I(vapply(attr(r, "formulae"), function(f) paste(deparse(f), collapse = ""), "")))
  print(r)
}

# ---- generalized models: summary (Wald z), drop1 (LRT), car::Anova (Wald chi-square) -----
glmms <- list(
  binomial = list(formula = "ybin ~ A + x + B + (1 | subj)", family = "binomial"),
  poisson = list(formula = "ycount ~ A * x + z + (1 | item) + (1 | subj)", family = "poisson")
)
for (nm in names(glmms)) {
  m <- glmms[[nm]]
  fit <- glmer(as.formula(m$formula), df, family = m$family, control = gctrl)
  out$glmm[[nm]] <- list(formula = m$formula, family = m$family,
                         theta = I(unname(getME(fit, "theta"))), logLik = c(logLik(fit)),
                         coefficients = tab(coef(summary(fit))),
                         printed = I(capture.output(print(summary(fit)))),
                         drop1 = tab(drop1(fit, test = "Chisq")),
                         anova_wald_2 = tab(car::Anova(fit, type = 2)),
                         anova_wald_3 = tab(car::Anova(fit, type = 3)))
}

# ---- update: R's update.formula, and refits ------------------------------------------------
pairs <- list(
  c("y ~ a + b:a", ". ~ ."), c("y ~ b:a + a", ". ~ ."),
  c("y ~ x + offset(log(t)) + (1|g)", ". ~ . + z"), c("y ~ x", ". ~ . - 1"), c("y ~ 0 + x", ". ~ . + z"),
  c("y ~ x*z", ". ~ . - x"), c("y ~ (a + b + c)^2", ". ~ . - a:c"), c("y ~ a/b", ". ~ . + x"),
  c("y ~ a*b*c", ". ~ . - a:b:c"), c("y ~ log(x) + I(x^2) + (1 + x | g)", ". ~ . - I(x^2)"),
  c("y ~ x + (1|g)", "~ . + (1|h)"), c("y ~ x + (1|g)", "z ~ ."), c("y ~ x + (1|g)", "log(.) ~ ."),
  c("y ~ x + (x||g)", ". ~ . - x"), c("y ~ x + (1|g/h)", ". ~ . + w"), c("y ~ x + (1|g)", ". ~ . - x + 1"),
  c("y ~ x + (1|g)", ". ~ x*w + (1|g)"), c("y ~ x + z + (1|g)", ". ~ . - 1 + 1"),
  c("y ~ -1 + x + (1|g)", ". ~ . + 1"), c("y ~ x + (1|g)", ". ~ . - (1|g)"),
  c("y ~ x + (1 | g)", ". ~ . - (1|g)"), c("y ~ x + (1|g)", ". ~ . - x - (1|g) + (1|h)"),
  c("cbind(s, f) ~ x + (1|g)", ". ~ . + z"), c("y ~ x + (1|g)", ". ~ . + x"),
  c("y ~ a:b + (1|g)", ". ~ . + b:a"), c("y ~ a + b", ". ~ b:a + ."), c("y ~ a*b + (1|g)", ". ~ . - a:b + c"),
  c("y ~ a*b + (1|g)", ". ~ . - (1|g) + (x|g)"), c("y ~ a + b + c", ". ~ .^2"),
  c("y ~ a*b", ". ~ . - a"), c("y ~ x + (1|g)", ". ~ . - x"), c("y ~ x", ". ~ . - x"),
  c("y ~ a + b", ". ~ . - b + b"), c("y ~ a %in% b + (1|g)", ". ~ . + c"),
  c("y ~ poly(x, 2) + (1|g)", ". ~ . + z:x"), c("y ~ x + (1 + x|g) + (1|h)", ". ~ . - (1 + x|g) + (1|g)"),
  c("y ~ (a + b)*c", ". ~ . - b:c"), c("y ~ x", ". ~ (.)*z"), c("y ~ x + w", ". ~ .:z"),
  c("y ~ a * (b + c)", ". ~ . - a:c + (0 + x | g)")
)
out$update$formulas <- lapply(pairs, function(p) {
  list(old = p[1], new = p[2],
       result = paste(deparse(update.formula(as.formula(p[1]), as.formula(p[2])), width.cutoff = 500L),
                      collapse = ""))
})
fit <- lmer(y ~ A * x + (1 | subj) + (1 | item), df, control = ctrl)
sub <- df[df$subj != "s01" & df$item != "i01", ]
out$update$refits <- list(
  list(formula = "y ~ A * x + (1 | subj) + (1 | item)", reml = TRUE, new = ". ~ . - A:x",
       logLik = c(logLik(update(fit, . ~ . - A:x))),
       fixef_names = I(names(fixef(update(fit, . ~ . - A:x))))),
  list(formula = "y ~ A * x + (1 | subj) + (1 | item)", reml = TRUE, new = ". ~ . + z - (1 | item)",
       logLik = c(logLik(update(fit, . ~ . + z - (1 | item))))),
  list(formula = "y ~ A * x + (1 | subj) + (1 | item)", reml = TRUE, new = "subset",
       exclude = list(subj = "s01", item = "i01"), nobs = nrow(sub),
       logLik = c(logLik(update(fit, data = sub)))),
  list(formula = "y ~ A * x + (1 | subj) + (1 | item)", reml = FALSE, new = "REML = FALSE",
       logLik = c(logLik(update(fit, REML = FALSE))))
)
gfit <- glmer(ybin ~ A + x + B + (1 | subj), df, family = "binomial", control = gctrl)
out$update$glmm_refit <- list(formula = "ybin ~ A + x + B + (1 | subj)", new = ". ~ . - B + z",
                              logLik = c(logLik(update(gfit, . ~ . - B + z))))

out[["_meta"]] <- list(R = R.version.string, lme4 = format(packageVersion("lme4")),
                       lmerTest = format(packageVersion("lmerTest")),
                       pbkrtest = format(packageVersion("pbkrtest")), car = format(packageVersion("car")))
write_json(out, "tests/reference/lmertest_tables.json", digits = NA, auto_unbox = TRUE, pretty = TRUE,
           na = "null")
