# Reference for sparsemixed/inference/varpar.py: the Hessian of the deviance in (sigma, theta)
# (beta profiled), computed in R from lme4's own internals, at lme4's optimum.
#
#   ML:   d(sigma, theta) = log|L|^2 + n log(2 pi sigma^2) + r2(theta) / sigma^2 - sum log w
#   REML: d(sigma, theta) = log|L|^2 + log|R_X|^2 + (n - p) log(2 pi sigma^2) + r2 / sigma^2 - sum log w
#
# log|L|^2, log|R_X|^2 and r2 = wrss + |u|^2 are read from the environment of lme4's
# deviance function (mkLmerDevfun) after evaluating it at theta.  The Hessian is
# numDeriv::hessian of d itself (Richardson extrapolation; no analytic gradient is
# used), cross-checked against lme4:::deriv12.  Covariance = 2 H^-1, SE = sqrt(diag).
#
# Run from the repository root:
#   Rscript tests/reference/make_varpar_reference.R
# (needs lme4, jsonlite, numDeriv: `make rdeps`).  Writes tests/reference/lme4_varpar.json.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(numDeriv)
})

root <- "."
models <- read.delim(file.path(root, "tests/reference/models.tsv"), stringsAsFactors = FALSE)
# every non-singular reference model except InstEval (too large for a quick reference)
skip <- c("dyestuff2_singular", "insteval_crossed")
models <- models[!(models$name %in% skip), ]

factors <- list(sleepstudy = "Subject", sleepstudy2 = c("Subject", "phase"), Dyestuff = "Batch",
                Dyestuff2 = "Batch", Penicillin = c("plate", "sample"),
                Pastes = c("batch", "cask", "sample"))

load_data <- function(name) {
  df <- read.csv(file.path(root, "sparsemixed/datasets/data", paste0(name, ".csv")))
  for (v in factors[[name]]) df[[v]] <- factor(df[[v]])
  df
}

# d(sigma, theta) from lme4's devfun environment
mk_dfun <- function(devfun, reml) {
  env <- environment(devfun)
  force(reml)
  function(par) {
    sigma <- par[1]
    theta <- par[-1]
    devfun(theta)                        # updates env$pp and env$resp at theta
    pp <- env$pp
    resp <- env$resp
    n <- length(resp$y)
    p <- ncol(pp$X)
    nu <- if (reml) n - p else n
    r2 <- resp$wrss() + pp$sqrL(1)
    ldW <- sum(log(resp$weights))
    pp$ldL2() + (if (reml) pp$ldRX2() else 0) + nu * log(2 * pi * sigma^2) + r2 / sigma^2 - ldW
  }
}

maxrel <- function(A, B) {
  s <- sqrt(outer(abs(diag(A)), abs(diag(A))))
  max(abs(A - B) / s)
}

out <- list()
for (i in seq_len(nrow(models))) {
  m <- models[i, ]
  reml <- as.logical(m$reml)
  form <- as.formula(m$formula)
  dat <- load_data(m$data)
  fit <- lmer(form, dat, REML = reml)
  theta <- getME(fit, "theta")
  sigma <- sigma(fit)
  crit <- if (reml) REMLcrit(fit) else deviance(fit)

  lf <- lFormula(form, dat, REML = reml)
  devfun <- do.call(mkLmerDevfun, lf)
  dfun <- mk_dfun(devfun, reml)
  x0 <- c(sigma = sigma, theta)

  # independent checks of the R side: d at sigma-hat is lme4's criterion (and devfun's)
  d0 <- dfun(x0)
  stopifnot(abs(d0 - crit) <= 1e-9 * abs(crit), abs(devfun(theta) - crit) <= 1e-9 * abs(crit))
  # ... and sigma-hat minimises d over sigma at fixed theta
  s_opt <- optimize(function(s) dfun(c(s, theta)), c(sigma / 2, sigma * 2), tol = 1e-10)$minimum
  stopifnot(abs(s_opt - sigma) <= 1e-6 * sigma)

  H <- numDeriv::hessian(dfun, x0)
  H2 <- lme4:::deriv12(dfun, x0)$Hessian
  g <- numDeriv::grad(dfun, x0)
  C <- 2 * solve(H)
  stopifnot(all(eigen(H, symmetric = TRUE, only.values = TRUE)$values > 0))
  nm <- c("sigma", names(theta))
  cat(sprintf("%-26s crit %.6f  |grad| %.2e  numDeriv vs deriv12 Hessian: %.2e  SE: %s\n",
              m$name, crit, max(abs(g)), maxrel(H, H2),
              paste(signif(sqrt(diag(C)), 6), collapse = " ")))
  out[[m$name]] <- list(
    data = m$data, formula = m$formula, reml = reml,
    names = I(nm), theta = I(unname(theta)), sigma = sigma, criterion = crit,
    deviance_at_sigma = d0, gradient = I(g),
    hessian = unname(H), cov = unname(C), se = I(unname(sqrt(diag(C)))),
    hessian_deriv12_maxrel = maxrel(H, H2)
  )
}
out[["_meta"]] <- list(R = R.version.string, lme4 = format(packageVersion("lme4")),
                       numDeriv = format(packageVersion("numDeriv")),
                       method = "numDeriv::hessian (Richardson) of d(sigma, theta) at lme4's optimum")
write_json(out, file.path(root, "tests/reference/lme4_varpar.json"), digits = NA,
           auto_unbox = TRUE, pretty = TRUE)
