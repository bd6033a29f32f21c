# Reference values for GlmerResult.predict and anova (tests/test_glmm_methods.py).
#
# Run from anywhere, e.g. from the repository root:
#   Rscript tests/reference/glmm/make_predict_reference.R
# Paths are relative to THIS SCRIPT'S DIRECTORY (as make_exact_reference.R): it reads models.tsv,
# data/*.csv and glmer_results.json there and writes predict_reference.json there. Needs lme4
# (made with 1.1-31, R 4.2.2) and jsonlite. Takes about ten seconds.
#
# predict: for cbpp_laplace, poisson_slope_offset and bernoulli_crossed_slope, a merMod at
# glmer_results.json's (theta, fixef) whose conditional modes are fully converged: the devfun of
# glmer(..., devFunOnly = TRUE, control = glmerControl(tolPwrss = 1e-12)), evaluated at that point
# and re-evaluated with PIRLS restarted from its own mode until the value repeats (see
# make_exact_reference.R, "polished"), then lme4::mkMerMod, as glmer builds its result. Its
# predict() on a small newdata frame (known levels, new levels, other exposures t for the offset):
# re.form = NULL (allow.new.levels = TRUE), re.form = NA, and for the crossed model
# re.form = ~(1 | item); type "link" and "response". The frame is stored with the values.
#
# anova: glmer fits of bernoulli_crossed_intercepts and bernoulli_crossed_slope (the calls of
# glmer_reference.R; their -2logLik must equal glmer_results.json's to 1e-8 relative), and
# lme4's anova(m0, m1): npar, logLik, deviance, Chisq, Df, Pr(>Chisq).
script_dir <- local({
  a <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  if (length(a)) dirname(normalizePath(sub("^--file=", "", a[1]))) else file.path("tests", "reference", "glmm")
})
source(file.path(script_dir, "common.R"))     # models, load_data
ref <- fromJSON(file.path(script_dir, "glmer_results.json"), simplifyVector = FALSE)

# the fully converged devfun value at p (PIRLS restarted from its mode until it repeats)
converged_eval <- function(devfun, p) {
  e <- environment(devfun)
  v <- devfun(p)
  for (k in 1:8) {
    e$lp0 <- e$resp$eta - e$baseOffset
    v2 <- devfun(p)
    done <- abs(v2 - v) <= 1e-14 * abs(v2)
    v <- v2
    if (done) break
  }
  if (!done) stop("polished PIRLS value did not settle")
  v
}

# merMod at glmer_results.json's estimates with converged conditional modes (nAGQ = 1 models)
merMod_at_glmer <- function(name) {
  m <- models[name, ]
  d <- load_data(m)
  fam <- eval(parse(text = m$family))
  r <- ref[[name]]
  theta <- unlist(r$theta)
  beta <- unlist(r$fixef)
  glmod <- glFormula(as.formula(m$formula), data = d, family = fam)
  dev <- glmer(as.formula(m$formula), data = d, family = fam, nAGQ = m$nAGQ, devFunOnly = TRUE,
               control = glmerControl(tolPwrss = 1e-12))
  p <- unname(c(theta, beta))
  fval <- converged_eval(dev, p)
  fit <- mkMerMod(environment(dev),
                  opt = list(par = p, fval = fval, conv = 0L, feval = NA,
                             message = "evaluated at glmer_results.json's estimates"),
                  reTrms = glmod$reTrms, fr = glmod$fr,
                  mc = call("glmer", formula = as.formula(m$formula), data = as.name(m$data),
                            family = fam, nAGQ = m$nAGQ))
  stopifnot(isTRUE(all.equal(unname(fixef(fit)), unname(beta), tolerance = 1e-14)))
  list(fit = fit, theta = theta, beta = beta, m2ll = -2 * as.numeric(logLik(fit)))
}

newdata <- list(
  cbpp_laplace = data.frame(
    herd = c("1", "1", "5", "15", "15", "16", "16", "new"),
    period = c("1", "4", "2", "3", "1", "2", "4", "1")),
  poisson_slope_offset = data.frame(
    g = c("g2", "g2", "g14", "g15", "g1", "g60", "gNEW", "gNEW"),
    x = c(1.5, -0.75, 0, 2.25, -1.9, 0.3, 0.8, -1.2),
    t = c(0.5, 2, 1, 0.25, 3.5, 1.7, 1.2, 0.4)),
  bernoulli_crossed_slope = data.frame(
    subj = c("s34", "s34", "s56", "s1", "sNEW", "s25", "sNEW", "s120"),
    item = c("i43", "i43", "i47", "i80", "i14", "iNEW", "iNEW", "i1"),
    cond = c(0.5, -0.5, -0.5, 0, 0.5, -0.5, 0.5, 1.5)))

re_forms <- list(cbpp_laplace = list(all = NULL, none = NA),
                 poisson_slope_offset = list(all = NULL, none = NA),
                 bernoulli_crossed_slope = list(all = NULL, none = NA, item = ~(1 | item)))
re_form_text <- list(all = NULL, none = "NA", item = "~(1 | item)")

out <- list(lme4 = as.character(packageVersion("lme4")), R = R.version.string, predict = list())
for (name in names(newdata)) {
  at <- merMod_at_glmer(name)
  nd <- newdata[[name]]
  preds <- list()
  for (rf in names(re_forms[[name]])) {
    for (type in c("link", "response")) {
      v <- predict(at$fit, newdata = nd, re.form = re_forms[[name]][[rf]], allow.new.levels = TRUE,
                   type = type)
      preds[[length(preds) + 1]] <- list(re_form = re_form_text[[rf]], type = type, values = unname(v))
    }
  }
  out$predict[[name]] <- list(theta = unname(at$theta), fixef = as.list(at$beta),
                              minus2loglik_converged = at$m2ll, newdata = nd, predictions = preds)
  cat(sprintf("%-26s -2logLik (converged, at glmer's estimates) %.10f\n", name, at$m2ll))
}

# anova between glmer's fits
fits <- list()
for (name in c("bernoulli_crossed_intercepts", "bernoulli_crossed_slope")) {
  m <- models[name, ]
  d <- load_data(m)
  fits[[name]] <- glmer(as.formula(m$formula), data = d, family = eval(parse(text = m$family)), nAGQ = m$nAGQ)
  m2ll <- -2 * as.numeric(logLik(fits[[name]]))
  rd <- (m2ll - ref[[name]]$minus2loglik) / ref[[name]]$minus2loglik
  if (abs(rd) > 1e-8) stop(sprintf("%s: -2logLik %.12g differs from glmer_results.json %.12g", name, m2ll,
                                   ref[[name]]$minus2loglik))
}
a <- anova(fits[[1]], fits[[2]])
out$anova <- list(
  models = c("bernoulli_crossed_intercepts", "bernoulli_crossed_slope"),
  npar = unname(a$npar), AIC = unname(a$AIC), BIC = unname(a$BIC), logLik = unname(a$logLik),
  deviance = unname(a$deviance), Chisq = unname(a$Chisq), Df = unname(a$Df),
  p_value = unname(a[["Pr(>Chisq)"]]))
print(a)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           file.path(script_dir, "predict_reference.json"))
