# Reference for the printed output of fitted models (tests/test_printing.py):
# lme4 1.1-31's print(summary(fit)) and the pieces of R's formatting behind it.
#
#   models:     per model, the text of print(summary(fit)) (captured with default options:
#               digits = 7, so the summary's digits = max(3, 7 - 3) = 4, width = 80), and the
#               numbers it is printed from, at full precision: the coefficient matrix
#               (summary(fit)$coefficients), the random-effects standard deviations and
#               correlations (attr(VarCorr(fit)[[g]], "stddev"/"correlation"), the residual
#               sigma), the correlation of the fixed effects (cov2cor(vcov(fit))), the scaled
#               residuals' quantiles and the AIC table (summary(fit)$AICtab), so that the
#               formatting can be checked on lme4's own numbers, apart from the fit.
#   lmerTest:   for the lmer fits marked so, lmerTest 3.1-3's print(summary(fit)) (its
#               Satterthwaite df and Pr(>|t|) columns, printed by the same printCoefmat) and
#               its coefficient matrix.
#   format:     format(x, digits = d) of assorted vectors (R's formatReal: a common number of
#               decimals giving each element d significant digits, fixed or scientific),
#               format(round(x, 3), nsmall = 3) and format.pval(p, digits = 3).
#   abbreviate: abbreviate(names, minlength = 6 and 11), as lme4 labels the correlation of
#               the fixed effects (unique labels: the minlength grows for duplicates).
#
# Data: lme4's data sets from sparsemixed/datasets/data, tests/reference/glmm/data (cbpp,
# VerbAgg), and one simulated Stroop-like design written here to printing/stroop.csv
# (set.seed(20240611); factor coefficients condincongruent, freqlow,
# condincongruent:freqlow).  lmer fits use bobyqa with tight tolerances (as
# make_compare_reference.R), glmer fits glmer's defaults.
#
# Run from the repository root:
#   Rscript tests/reference/make_printing_reference.R
# (needs lme4, lmerTest, jsonlite; R 4.2.2, lme4 1.1-31, lmerTest 3.1-3).  Writes tests/reference/printing/lme4_printing.json
# and tests/reference/printing/stroop.csv.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(lmerTest, exclude = "lmer")
})
options(digits = 7, width = 80, show.signif.stars = TRUE)
root <- "."
out_dir <- file.path(root, "tests/reference/printing")
dir.create(out_dir, showWarnings = FALSE)

# ---- the simulated Stroop-like data ---------------------------------------------------
set.seed(20240611)
nsubj <- 30; nitem <- 20
subj <- sprintf("s%02d", 1:nsubj); item <- sprintf("i%02d", 1:nitem)
d <- expand.grid(cond = c("congruent", "incongruent"), item = item, subj = subj,
                 stringsAsFactors = FALSE)
d$freq <- ifelse(as.integer(sub("i", "", d$item)) <= nitem / 2, "high", "low")
s0 <- rnorm(nsubj, 0, 50); s1 <- 0.3 * s0 / 50 * 20 + rnorm(nsubj, 0, 20 * sqrt(1 - 0.09))
i0 <- rnorm(nitem, 0, 15)
si <- match(d$subj, subj); ii <- match(d$item, item)
inc <- d$cond == "incongruent"; low <- d$freq == "low"
d$rt <- round(600 + 40 * inc + 20 * low + 10 * inc * low + s0[si] + s1[si] * inc + i0[ii] +
              rnorm(nrow(d), 0, 80), 1)
d <- d[, c("rt", "cond", "freq", "subj", "item")]
write.csv(d, file.path(out_dir, "stroop.csv"), row.names = FALSE)

# ---- data -----------------------------------------------------------------------------
read_data <- function(name) {
  f <- file.path(root, "sparsemixed/datasets/data", paste0(name, ".csv"))
  if (!file.exists(f)) f <- file.path(root, "tests/reference/glmm/data", paste0(name, ".csv"))
  if (!file.exists(f)) f <- file.path(out_dir, paste0(name, ".csv"))
  df <- read.csv(f)
  for (v in names(df)) if (is.character(df[[v]])) df[[v]] <- factor(df[[v]])
  df
}
factors <- list(sleepstudy = "Subject", Dyestuff2 = "Batch", Penicillin = c("plate", "sample"),
                Pastes = c("batch", "cask", "sample"), cbpp = c("herd", "period"),
                VerbAgg = c("id", "item"), stroop = character(0))

models <- list(
  sleepstudy_reml = list(data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", reml = TRUE,
                         lmertest = TRUE),
  sleepstudy_ml_uncorr = list(data = "sleepstudy", reml = FALSE,
                              formula = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"),
  stroop = list(data = "stroop", formula = "rt ~ cond * freq + (1 + cond | subj) + (1 | item)", reml = TRUE,
                lmertest = TRUE),
  stroop_ml = list(data = "stroop", formula = "rt ~ cond * freq + (1 | subj) + (1 | item)", reml = FALSE),
  penicillin = list(data = "Penicillin", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", reml = TRUE),
  pastes = list(data = "Pastes", formula = "strength ~ 1 + (1 | batch/cask)", reml = TRUE),
  dyestuff2_singular = list(data = "Dyestuff2", formula = "Yield ~ 1 + (1 | Batch)", reml = TRUE),
  cbpp = list(data = "cbpp", formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
              family = "binomial"),
  verbagg = list(data = "VerbAgg", formula = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
                 family = "binomial")
)
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-3, rhoend = 1e-10, maxfun = 1e5))

num <- function(x) unname(as.numeric(x))
res <- list()
for (nm in names(models)) {
  m <- models[[nm]]
  df <- read_data(m$data)
  for (v in factors[[m$data]]) df[[v]] <- factor(df[[v]])
  fit <- if (is.null(m$family)) {
    lmer(as.formula(m$formula), df, REML = m$reml, control = ctrl)
  } else {
    glmer(as.formula(m$formula), df, family = m$family)
  }
  s <- summary(fit)
  vc <- VarCorr(fit)
  cf <- s$coefficients
  corF <- as.matrix(cov2cor(vcov(fit)))
  rq <- quantile(s$residuals, na.rm = TRUE)
  res[[nm]] <- list(
    data = m$data, formula = m$formula, reml = if (is.null(m$reml)) FALSE else m$reml,
    family = if (is.null(m$family)) NULL else m$family,
    text = paste(capture.output(print(s)), collapse = "\n"),
    coefficients = list(names = rownames(cf), columns = colnames(cf),
                        values = lapply(seq_len(ncol(cf)), function(j) num(cf[, j]))),
    varcorr = lapply(names(vc), function(g) list(
      group = g, names = colnames(vc[[g]]), stddev = num(attr(vc[[g]], "stddev")),
      correlation = if (ncol(vc[[g]]) > 1) lapply(seq_len(ncol(vc[[g]])),
                                                  function(j) num(attr(vc[[g]], "correlation")[, j])) else NULL)),
    sigma = if (is.null(m$family)) sigma(fit) else NULL,
    fixef_correlation = lapply(seq_len(ncol(corF)), function(j) num(corF[, j])),
    residual_quantiles = num(rq),
    aictab = as.list(s$AICtab),
    ngrps = as.list(s$ngrps), nobs = nobs(fit)
  )
  if (isTRUE(m$lmertest)) {
    st <- summary(as_lmerModLmerTest(fit))
    ct <- st$coefficients
    res[[nm]]$lmertest <- list(text = paste(capture.output(print(st)), collapse = "\n"),
                               columns = colnames(ct),
                               values = lapply(seq_len(ncol(ct)), function(j) num(ct[, j])))
  }
}

# ---- R's formatting, piece by piece -----------------------------------------------------
set.seed(7)
vectors <- list(
  c(612.0899, 35.07166, 654.941),
  c(24.74045, 5.922133, 25.59182),
  c(251.405105, 6.824597, 10.467286, 1.545790),
  c(0.0000123, 1.5, 250),
  c(1e-10, 3.2e-12),
  c(123456789, 2.5),
  c(0, 13.80613, 3.7157),
  c(-3.95357, -0.46340, 0.02312, 0.46340, 5.17926),
  c(0.1, 0.25, 1, 10.5),
  c(1234567.891, 0.001),
  c(99999.99, 0.5),
  c(-0.000045, 0.03, -12.5),
  signif(rlnorm(6, 0, 4), 6),
  signif(rnorm(5, 0, 1e-3), 5),
  signif(rnorm(5, 100, 30), 8)
)
fmt <- lapply(vectors, function(v) list(x = v, d4 = format(v, digits = 4), d7 = format(v, digits = 7),
                                        d3 = format(v, digits = 3)))
cors <- list(c(1, -0.13771, 0.2, -0.5), c(0.0655, 1), c(1, 0.99999, -0.0004))
corfmt <- lapply(cors, function(v) list(x = v, out = format(round(v, 3), nsmall = 3),
                                       out2 = format(round(v, 2), nsmall = 2)))
pvals <- list(c(1.47e-09, 0.001068, 0.000474, 0.000182), c(0.5, 0.049, 1e-20),
              c(0.8004, 0.0639), c(2e-16, 3.3e-17, 0.2), c(0.0312, 0.000099, 0.7777777))
pvfmt <- lapply(pvals, function(p) list(x = p, out = format.pval(p, digits = 3)))
abbr_names <- list(
  c("(Intercept)", "Days"),
  c("(Intercept)", "condincongruent", "freqlow", "condincongruent:freqlow"),
  c("(Intercept)", "period2", "period3", "period4"),
  c("(Intercept)", "Anger", "GenderM", "btypescold", "btypeshout", "situself"),
  c("(Intercept)", "x", "x:z", "I(x^2)", "log(dose)", "groupB", "groupC", "groupB:x", "groupC:x"),
  c("conditionA", "conditionB", "conditionC", "condition A long", "Aa bb cc dd", "ageyears"),
  c("treatmentplacebo", "treatmentplacebo:time", "treatmentplacebo:time:sexmale", "time", "sexmale"),
  c("aaaaaaaa", "aaaaaaab", "aaaaaaba", "AAAAAAAA", "x1234567", "x1234568")
)
abbr <- lapply(abbr_names, function(n) list(names = n, m6 = unname(abbreviate(n, minlength = 6)),
                                           m11 = unname(abbreviate(n, minlength = 11)),
                                           m4 = unname(abbreviate(n, minlength = 4))))

out <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
            lmerTest = as.character(packageVersion("lmerTest")), models = res,
            format = fmt, correlation_format = corfmt, pvalue_format = pvfmt, abbreviate = abbr)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE),
           file.path(out_dir, "lme4_printing.json"))
cat("wrote", file.path(out_dir, "lme4_printing.json"), "\n")
