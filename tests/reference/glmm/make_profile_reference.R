# Reference profile intervals for glmer fits (tests/test_glmm_methods.py, GLMM profile).
#
# Run from anywhere, e.g. from the repository root:
#   Rscript tests/reference/glmm/make_profile_reference.R
# Paths are relative to THIS SCRIPT'S DIRECTORY: it reads models.tsv and data/*.csv there and
# writes profile_reference.json there. Needs lme4 (made with 1.1-31, R 4.2.2) and jsonlite.
# Takes about a minute.
#
# For cbpp_laplace, bernoulli_crossed_intercepts, grouseticks_poisson (scalar random-effects
# terms) and poisson_slope_offset ((1 + x | g): two SDs and a correlation): the glmer fit of glmer_reference.R (default control) and lme4's
# confint(fit, method = "profile", level = 0.95): lme4 profiles the Laplace deviance around its
# own fit and inverts an interpolating spline of the grid; rows .sig01 ... and the fixed effects.
script_dir <- local({
  a <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  if (length(a)) dirname(normalizePath(sub("^--file=", "", a[1]))) else file.path("tests", "reference", "glmm")
})
source(file.path(script_dir, "common.R"))     # models, load_data

out <- list()
for (name in c("cbpp_laplace", "bernoulli_crossed_intercepts", "grouseticks_poisson", "poisson_slope_offset")) {
  m <- models[name, ]
  d <- load_data(m)
  fit <- glmer(as.formula(m$formula), data = d, family = eval(parse(text = m$family)), nAGQ = m$nAGQ)
  ci <- confint(fit, method = "profile", level = 0.95)
  out[[name]] <- list(rows = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]),
                      minus2loglik = -2 * as.numeric(logLik(fit)))
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           file.path(script_dir, "profile_reference.json"))
