# Reference for sparsemixed/inference/profile/: lme4's profile() and
# confint(fit, method = "profile").
#
# lme4 (1.1-31) profiles the ML deviance even for REML fits: devfun2() starts with
# refitML(), so every profile (variance parameters on the (sd, cor, sigma) scale and
# fixed effects) is  zeta(c) = sign(c - c_hat) sqrt(dev_ML(c) - dev_ML_hat)  around the
# ML estimates, and confint() inverts an interpolating spline of zeta at +-qnorm(0.975).
#
# For each model this stores:
#   confint:  confint(fit, method = "profile") (all parameters, lme4's defaults)
#   ml:       the ML estimates and deviance the profile is centred on
#   points:   a few rows of as.data.frame(profile(fit)) per parameter (all columns), for
#             checking individual profiled points, and the number of rows per parameter
#   frame:    the data, for the simulated model (sim3_correlated: one term with three
#             correlated effects, profiled for three of its correlations only)
#
# Run from the repository root:
#   Rscript tests/reference/make_profile_reference.R
# (needs lme4 and jsonlite: `make rdeps`).  Writes tests/reference/lme4_profile.json.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

root <- "."
factors <- list(sleepstudy = "Subject", Dyestuff = "Batch", Dyestuff2 = "Batch",
                Penicillin = c("plate", "sample"))

load_data <- function(name) {
  df <- read.csv(file.path(root, "sparsemixed/datasets/data", paste0(name, ".csv")))
  for (v in factors[[name]]) df[[v]] <- factor(df[[v]])
  df
}

# A term with three correlated effects and a negative correlation, simulated (stored in
# the JSON): exercises correlations other than T[2,1] and walks that start downwards
set.seed(101)
G <- 40; m <- 10
S3 <- matrix(c(1, 0.5, -0.4, 0.5, 1, 0.2, -0.4, 0.2, 1), 3)
b3 <- matrix(rnorm(G * 3), G) %*% chol(S3)
g3 <- rep(seq_len(G), each = m)
x1 <- round(rnorm(G * m), 4); x2 <- round(rnorm(G * m), 4)
y3 <- round(1 + 0.5 * x1 - 0.3 * x2 + b3[g3, 1] + b3[g3, 2] * x1 + b3[g3, 3] * x2 +
            rnorm(G * m, sd = 0.7), 4)
sim3 <- data.frame(y = y3, x1 = x1, x2 = x2, g = factor(sprintf("g%02d", g3)))

models <- list(
  dyestuff_reml      = list(data = "Dyestuff",   formula = "Yield ~ 1 + (1|Batch)", reml = TRUE),
  sleepstudy_reml    = list(data = "sleepstudy", formula = "Reaction ~ Days + (Days|Subject)", reml = TRUE),
  sleepstudy_ml      = list(data = "sleepstudy", formula = "Reaction ~ Days + (Days|Subject)", reml = FALSE),
  penicillin_crossed = list(data = "Penicillin", formula = "diameter ~ 1 + (1|plate) + (1|sample)", reml = TRUE),
  dyestuff2_singular = list(data = "Dyestuff2",  formula = "Yield ~ 1 + (1|Batch)", reml = TRUE),
  sim3_correlated    = list(data = "sim3", formula = "y ~ x1 + x2 + (x1 + x2 | g)", reml = FALSE,
                            which = c(2L, 3L, 5L))
)

out <- list()
for (nm in names(models)) {
  m <- models[[nm]]
  dat <- if (m$data == "sim3") sim3 else load_data(m$data)
  fit <- lmer(as.formula(m$formula), dat, REML = m$reml)
  t0 <- proc.time()[["elapsed"]]
  pr <- profile(fit, which = m$which)
  secs <- proc.time()[["elapsed"]] - t0
  ci <- confint(pr)                        # what confint(fit, method = "profile") returns
  ci2 <- suppressMessages(confint(fit, parm = if (is.null(m$which)) seq_len(nrow(ci)) else m$which,
                                  method = "profile"))
  stopifnot(isTRUE(all.equal(ci, ci2, tolerance = 1e-8)))
  ci90 <- confint(pr, level = 0.90)
  mlfit <- if (m$reml) refitML(fit) else fit
  df <- as.data.frame(pr)
  pars <- levels(df$.par)
  # a few points per parameter: the two ends and two near zeta = +-1.96
  pts <- list()
  nrows <- list()
  for (p in pars) {
    sub <- df[df$.par == p, ]
    nrows[[p]] <- nrow(sub)
    idx <- unique(c(1, nrow(sub), which.min(abs(sub$.zeta + 1.96)), which.min(abs(sub$.zeta - 1.96))))
    sub <- sub[idx, setdiff(names(sub), c(".par", ".focal"))]
    pts[[p]] <- lapply(seq_len(nrow(sub)), function(i) as.list(sub[i, , drop = FALSE]))
  }
  ml_sd <- as.data.frame(VarCorr(mlfit))$sdcor
  cat(sprintf("%-20s profile %.2f s, %d rows\n", nm, secs, nrow(df)))
  print(ci)
  out[[nm]] <- list(
    data = m$data, formula = m$formula, reml = m$reml,
    parm = I(rownames(ci)),
    lower = I(unname(ci[, 1])), upper = I(unname(ci[, 2])),
    lower90 = I(unname(ci90[, 1])), upper90 = I(unname(ci90[, 2])),
    ml = list(theta = I(unname(getME(mlfit, "theta"))), sigma = sigma(mlfit),
              fixef = I(unname(fixef(mlfit))), deviance = deviance(mlfit),
              sdcor = I(ml_sd), fixef_se = I(unname(sqrt(diag(as.matrix(vcov(mlfit))))))),
    columns = I(setdiff(names(df), c(".par", ".focal"))),
    points = pts, nrows = nrows, seconds = secs
  )
  if (m$data == "sim3") out[[nm]]$frame <- list(y = dat$y, x1 = dat$x1, x2 = dat$x2,
                                                g = as.character(dat$g))
}
out[["_meta"]] <- list(R = R.version.string, lme4 = format(packageVersion("lme4")),
                       method = "profile(fit) with lme4's defaults (alphamax = 0.01, maxpts = 100, optimizer of the fit); confint() on it")
write_json(out, file.path(root, "tests/reference/lme4_profile.json"), digits = NA,
           auto_unbox = TRUE, pretty = TRUE)
