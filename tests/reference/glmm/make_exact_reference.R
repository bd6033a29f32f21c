# Exact (fully converged) reference values for the GLMM tests, at glmer's own estimates.
#
# Run from anywhere, e.g. from the repository root:
#   Rscript tests/reference/glmm/make_exact_reference.R
# Paths are resolved relative to THIS SCRIPT'S DIRECTORY (found from Rscript's --file= argument;
# falls back to ./tests/reference/glmm when the script is source()d): it reads models.tsv,
# data/*.csv and glmer_results.json from there and writes exact_reference.json there.
# Needs lme4 (made with 1.1-31, R 4.2.2), jsonlite and numDeriv. Takes about two minutes.
#
# For each model of models.tsv (data and factors read exactly as glmer_reference.R does) it refits
# glmer with the same call and checks the refit's -2logLik against glmer_results.json (1e-8
# relative). The reference point is glmer_results.json's (theta, fixef), not the refit's: refits
# are not bit-reproducible (BLAS), and can stop elsewhere inside the optimizer's tolerance (seen:
# 2e-4 relative in fixef for verbagg_slope). The "glmer object" at that point is built the way
# glmer builds its result: glmer(..., devFunOnly = TRUE) with the default control (tolPwrss 1e-7),
# evaluated at the point, then lme4::mkMerMod. At that point it records:
#   laplace_at_glmer      fully converged Laplace -2 log L (nAGQ = 1; glmer's objective, which
#                         includes the family aic() term) from a devfun built by
#                         glmer(..., devFunOnly = TRUE, control = glmerControl(tolPwrss = 1e-12)),
#                         evaluated with a warm-started ("polished") PIRLS, see converged_eval();
#                         for nAGQ = 0 the devfun takes theta only and beta_at_theta is recorded;
#                         for nAGQ = 25 also the AGQ value in glmer's convention.
#   deviance_components   decomposition of glmer's objective for the glmer object;
#   deviance_components_converged  the same pieces at the converged PIRLS mode.
#   hessian               numDeriv::hessian (default arguments) of the polished devfun in
#                         (theta, beta); SEs of beta from the beta block of 2 H^-1 (nAGQ >= 1).
#   rx_se, condsd, u, b, fitted, residuals, predict_link_head (glmer object), agq (cbpp models).
#
# Why "polished": lme4's PIRLS (pwrssUpdate) stops at the first iteration whose change in the
# penalized deviance is below tolPwrss (relative), and the value it returns uses log|L|^2 from the
# Cholesky factor of that last iteration, whose weights are those of the PREVIOUS iterate. So a
# single devfun call carries an O(|u_k - u_{k-1}|) error in log|L|^2 whatever tolPwrss is (a
# pdev-change criterion only bounds |u_k - u_{k-1}| by about sqrt(tol * pdev)). Restarting PIRLS
# from the mode it just found (environment(devfun)$lp0 <- eta - offset, see warm_lp0()) makes the
# weights of the last factorization those of the converged mode; repeating until the value no
# longer changes gives the fully converged Laplace value (checked: the square-root weights of the
# last factorization, pp$Xwts, equal those at the final mu, resp$sqrtXwt, to round-off). The
# single-call values (tolPwrss 1e-12 and 1e-13) and the polished one are all recorded under
# laplace_at_glmer$stability.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(numDeriv)
})

script_dir <- local({
  a <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  if (length(a)) dirname(normalizePath(sub("^--file=", "", a[1]))) else file.path("tests", "reference", "glmm")
})
TOL <- 1e-12
t_start <- proc.time()[["elapsed"]]

models <- read.delim(file.path(script_dir, "models.tsv"), stringsAsFactors = FALSE,
                     comment.char = "#", quote = "")
ref <- fromJSON(file.path(script_dir, "glmer_results.json"), simplifyVector = FALSE)

load_data <- function(m) {
  d <- read.csv(file.path(script_dir, "data", paste0(m$data, ".csv")))
  for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]])
  for (v in strsplit(m$factors, ",")[[1]]) if (nzchar(v)) d[[v]] <- factor(d[[v]])
  d
}

reldiff <- function(a, b) (a - b) / abs(b)

# devfun with tightened PIRLS (builds it the same way glmer does, incl. the nAGQ = 0 start step)
make_devfun <- function(m, d, fam, nAGQ, tol = TOL)
  glmer(as.formula(m$formula), data = d, family = fam, nAGQ = nAGQ, devFunOnly = TRUE,
        control = glmerControl(tolPwrss = tol))

# PIRLS start for the next devfun call: the linear predictor it just converged to. The devfun
# does resp$updateMu(lp0) while the response's offset is the model's own (baseOffset for
# nAGQ >= 1, where beta enters through the offset afterwards), so lp0 must be the full
# eta minus that offset. (pp$linPred(1) is only Z b for nAGQ >= 1: it would start PIRLS with
# X beta missing from the weights and make the "polished" value repeat without converging.)
warm_lp0 <- function(e)
  e$resp$eta - (if (exists("baseOffset", envir = e, inherits = FALSE)) e$baseOffset else e$resp$offset)

# weights of the last Cholesky factorization vs the weights at the final mu: 0 when converged
weight_gap <- function(e) max(abs(e$pp$Xwts - e$resp$sqrtXwt))

# Fully converged devfun value at p: call, then restart PIRLS from the mode just found until the
# value repeats (relative change <= 1e-14, at most 6 restarts). Leaves lp0 at the mode at p.
converged_eval <- function(devfun, p, trace = FALSE) {
  e <- environment(devfun)
  v <- devfun(p)
  steps <- c()
  for (k in 1:6) {
    e$lp0 <- warm_lp0(e)
    v2 <- devfun(p)
    steps <- c(steps, v2 - v)
    done <- abs(v2 - v) <= 1e-14 * abs(v2)
    v <- v2
    if (done) break
  }
  if (!done) warning("polished PIRLS value did not settle")
  if (trace) list(value = v, first = v - sum(steps), steps = steps, weight_gap = weight_gap(e)) else v
}

# single-call and polished values at p, from the devfun's own start (lp0 as glmer leaves it)
stability <- function(devfun, p) {
  e <- environment(devfun)
  lp_start <- e$lp0
  e$tolPwrss <- TOL
  s1 <- devfun(p); gap1 <- weight_gap(e); s1b <- devfun(p)
  e$tolPwrss <- 1e-13; e$lp0 <- lp_start; s13 <- devfun(p)
  e$tolPwrss <- TOL; e$lp0 <- lp_start
  pol <- converged_eval(devfun, p, trace = TRUE)
  # start-independence of the polished value: from a cold start (lp0 = 0, i.e. eta = the model's
  # offset only) and from glmer's start perturbed by +0.5 on every linear predictor
  e$lp0 <- numeric(length(lp_start))
  cold <- tryCatch(converged_eval(devfun, p), error = function(err) conditionMessage(err))
  e$lp0 <- lp_start + 0.5
  pert <- tryCatch(converged_eval(devfun, p), error = function(err) conditionMessage(err))
  e$lp0 <- lp_start
  final <- converged_eval(devfun, p, trace = TRUE)
  gapF <- final$weight_gap; final <- final$value
  num <- function(x) if (is.numeric(x)) x else NA_real_
  list(
    value = final,
    single_call_tol1e12 = s1,
    single_call_tol1e12_repeat_rel_diff = reldiff(s1b, s1),
    single_call_tol1e13 = s13,
    single_call_rel_diff_tol1e13_vs_tol1e12 = reldiff(s13, s1),
    single_call_tol1e12_rel_diff_vs_converged = reldiff(s1, final),
    polish_first_call = pol$first,
    polish_step_diffs = pol$steps,
    single_call_weight_gap = gap1,
    converged_weight_gap = gapF,
    polished_from_cold_start_rel_diff = if (is.numeric(cold)) reldiff(cold, final) else NA_real_,
    cold_start_error = if (is.numeric(cold)) NULL else cold,
    polished_from_perturbed_start_rel_diff = if (is.numeric(pert)) reldiff(pert, final) else NA_real_,
    perturbed_start_error = if (is.numeric(pert)) NULL else pert,
    max_abs_rel_diff_polished = max(abs(c(reldiff(num(cold), final), reldiff(num(pert), final),
                                          reldiff(pol$value, final))), na.rm = TRUE))
}

# components of the Laplace value at the devfun's current (converged) state
env_components <- function(devfun) {
  e <- environment(devfun)
  c(sum_dev_resid_sq = sum(e$resp$devResid()), family_aic = e$resp$aic(),
    u_sq = e$pp$sqrL(1), ldL2 = e$pp$ldL2())
}

head20 <- function(x) unname(head(as.numeric(x), 20))
rows <- function(df) lapply(seq_len(nrow(df)), function(j) as.list(df[j, , drop = FALSE]))

out <- list()
for (i in seq_len(nrow(models))) {
  m <- models[i, ]
  t0 <- proc.time()[["elapsed"]]
  d <- load_data(m)
  fam <- eval(parse(text = m$family))
  nAGQ <- as.integer(m$nAGQ)
  r <- ref[[m$name]]

  # --- refit with glmer_reference.R's call -------------------------------------------------
  warns <- character(0)
  refit <- withCallingHandlers(
    glmer(as.formula(m$formula), data = d, family = fam, nAGQ = m$nAGQ),
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") })
  m2ll_refit <- -2 * as.numeric(logLik(refit))
  rd <- reldiff(m2ll_refit, r$minus2loglik)
  if (abs(rd) > 1e-8) stop(sprintf("%s: refit -2logLik %.12g differs from glmer_results.json %.12g",
                                   m$name, m2ll_refit, r$minus2loglik))

  # --- glmer's point: the estimates in glmer_results.json ---------------------------------------
  # (a refit on another BLAS can stop elsewhere inside the optimizer's tolerance, up to 2e-4
  # relative in fixef for verbagg_slope, so the point is taken from the JSON, not the refit)
  theta <- setNames(unlist(r$theta), names(getME(refit, "theta")))
  beta <- unlist(r$fixef)[names(fixef(refit))]
  # merMod at that point, built as glmer builds it: glmer's own devfun (default tolPwrss 1e-7,
  # same PIRLS start), evaluated at the point, then lme4's mkMerMod
  glmod <- glFormula(as.formula(m$formula), data = d, family = fam)
  devG <- glmer(as.formula(m$formula), data = d, family = fam, nAGQ = nAGQ, devFunOnly = TRUE)
  pG <- if (nAGQ == 0) unname(theta) else unname(c(theta, beta))
  fvalG <- devG(pG)
  if (nAGQ == 0) environment(devG)$nAGQ <- 0L     # glmer sets this in optimizeGlmer
  fit <- mkMerMod(environment(devG),
                  opt = list(par = pG, fval = fvalG, conv = 0L, feval = NA,
                             message = "evaluated at glmer_results.json's estimates"),
                  reTrms = glmod$reTrms, fr = glmod$fr,
                  mc = call("glmer", formula = as.formula(m$formula), data = as.name(m$data),
                            family = fam, nAGQ = nAGQ))
  m2ll <- -2 * as.numeric(logLik(fit))
  p <- c(theta, beta)
  pnames <- c(names(theta), names(beta))

  # --- converged Laplace (and AGQ) at glmer's point ------------------------------------------
  lap <- list()
  if (nAGQ == 0) {
    df0 <- make_devfun(m, d, fam, 0)
    st <- stability(df0, unname(theta))            # nAGQ = 0 devfun: theta only
    bat <- environment(df0)$pp$beta(1)             # beta where its joint (u, beta) PIRLS ended
    names(bat) <- names(beta)
    comps_conv <- env_components(df0)
    uconv <- as.numeric(environment(df0)$pp$u(1))  # converged u at theta (before df0 is reused)
    df1 <- make_devfun(m, d, fam, 1)
    l1_glmer <- converged_eval(df1, p)
    l1_bat <- converged_eval(df1, c(theta, bat))
    lap <- list(
      value = st$value, devfun_nAGQ = 0L, devfun_argument = "theta",
      glmer_minus2loglik = r$minus2loglik,
      diff_vs_glmer = st$value - r$minus2loglik, rel_diff_vs_glmer = reldiff(st$value, r$minus2loglik),
      beta_at_theta = as.list(bat),
      beta_at_theta_minus_glmer_fixef = as.list(bat - beta),
      laplace_nAGQ1_at_theta_beta_at_theta = l1_bat,
      laplace_nAGQ1_at_theta_beta_at_theta_minus_value = l1_bat - st$value,
      laplace_nAGQ1_at_glmer_theta_fixef = l1_glmer,
      stability = st[setdiff(names(st), "value")])
    dfH <- NULL
  } else {
    df1 <- make_devfun(m, d, fam, 1)
    st1 <- stability(df1, p)
    comps_conv <- env_components(df1)
    uconv <- as.numeric(environment(df1)$pp$u(1))  # converged u at p (before the Hessian moves df1)
    lap <- list(value = st1$value, devfun_nAGQ = 1L, devfun_argument = "c(theta, beta)")
    if (nAGQ == 1) {
      lap <- c(lap, list(glmer_minus2loglik = r$minus2loglik,
                         diff_vs_glmer = st1$value - r$minus2loglik,
                         rel_diff_vs_glmer = reldiff(st1$value, r$minus2loglik)))
      dfH <- df1
    } else {
      dfA <- make_devfun(m, d, fam, nAGQ)
      stA <- stability(dfA, p)
      lap <- c(lap, list(
        agq = list(nAGQ = nAGQ, value = stA$value, convention = "glmer's: sum of squared deviance residuals + ||u||^2 + log|L|^2 - 2 log prod(multipliers) (no saturated -2 log L)",
                   glmer_minus2loglik = r$minus2loglik,
                   diff_vs_glmer = stA$value - r$minus2loglik,
                   rel_diff_vs_glmer = reldiff(stA$value, r$minus2loglik),
                   stability = stA[setdiff(names(stA), "value")])))
      dfH <- dfA
    }
    lap$stability <- st1[setdiff(names(st1), "value")]
  }
  lap$tolPwrss <- TOL

  # --- decomposition ---------------------------------------------------------------------------
  devres <- sum(residuals(fit, "deviance")^2)
  faic <- fit@resp$aic()
  usq <- sum(getME(fit, "u")^2)
  ldL2 <- 2 * as.numeric(determinant(getME(fit, "L"))$modulus)   # determinant() of a CHMfactor is log|L|
  comps <- list(
    sum_dev_resid_sq = devres, deviance = deviance(fit), family_aic = faic,
    saturated_minus2loglik = faic - devres, u_sq = usq, ldL2 = ldL2, ldL2_pp = fit@pp$ldL2(),
    aic_plus_u_sq_plus_ldL2 = faic + usq + ldL2,
    devres_plus_u_sq_plus_ldL2 = devres + usq + ldL2,
    glmer_minus2loglik = m2ll)
  if (nAGQ > 1) comps$agq_minus2_log_prod_mult = m2ll - (devres + usq + ldL2)
  cc <- as.list(comps_conv)
  cc$saturated_minus2loglik <- cc$family_aic - cc$sum_dev_resid_sq
  cc$aic_plus_u_sq_plus_ldL2 <- cc$family_aic + cc$u_sq + cc$ldL2
  cc$at <- if (nAGQ == 0) "(theta, beta_at_theta), nAGQ = 0 devfun" else "(theta, beta), nAGQ = 1 devfun"

  # --- Hessian SEs --------------------------------------------------------------------------------
  # numDeriv's Richardson Hessian with its default arguments (initial relative step d = 0.1),
  # repeated with d = 0.05 and d = 0.02 as a check on its accuracy.
  hess <- NULL
  if (!is.null(dfH)) {
    f <- function(x) converged_eval(dfH, x)
    margs <- function(dd) list(eps = 1e-4, d = dd, zero.tol = sqrt(.Machine$double.eps / 7e-7), r = 4, v = 2)
    nb <- length(beta); ib <- length(theta) + seq_len(nb)
    Hs <- lapply(c(0.1, 0.05, 0.02), function(dd) numDeriv::hessian(f, p, method.args = margs(dd)))
    ses <- lapply(Hs, function(H) setNames(sqrt(diag(2 * solve(H))[ib]), names(beta)))
    H <- Hs[[1]]; V <- 2 * solve(H); se <- ses[[1]]
    se_th <- sqrt(pmax(diag(V)[seq_along(theta)], 0)); names(se_th) <- names(theta)
    gse <- unlist(r$fixef_se)[names(beta)]
    hess <- list(
      devfun_nAGQ = if (nAGQ > 1) nAGQ else 1L,
      par_names = pnames, H = unname(H),
      min_eigenvalue = min(eigen(H, symmetric = TRUE, only.values = TRUE)$values),
      se = as.list(se), se_theta = as.list(se_th),
      glmer_fixef_se = as.list(gse), rel_diff_vs_glmer_fixef_se = as.list(reldiff(se, gse)),
      numDeriv_method_args = margs(0.1),
      se_d_0.05 = as.list(ses[[2]]), se_d_0.02 = as.list(ses[[3]]),
      se_max_rel_diff_d_0.05 = max(abs(reldiff(ses[[2]], se))),
      se_max_rel_diff_d_0.02 = max(abs(reldiff(ses[[3]], se))))
  }

  # --- everything else from the fitted object ---------------------------------------------------
  rx <- sqrt(diag(as.matrix(vcov(fit, use.hessian = FALSE)))); names(rx) <- names(beta)
  rx_refit <- suppressWarnings(sqrt(diag(as.matrix(vcov(refit, use.hessian = FALSE)))))
  re <- as.data.frame(ranef(fit, condVar = TRUE))
  for (v in c("grpvar", "term", "grp")) re[[v]] <- as.character(re[[v]])
  res <- lapply(c(response = "response", pearson = "pearson", deviance = "deviance", working = "working"),
                function(type) { x <- residuals(fit, type = type); list(head = head20(x), ss = sum(x^2)) })
  entry <- list(
    data = m$data, formula = m$formula, family = m$family, nAGQ = nAGQ, nobs = nobs(fit),
    refit = list(minus2loglik = m2ll_refit, json_minus2loglik = r$minus2loglik, rel_diff = rd,
                 theta_max_rel_diff_vs_json = max(abs(reldiff(unname(getME(refit, "theta")), unlist(r$theta)))),
                 fixef_max_rel_diff_vs_json = max(abs(reldiff(fixef(refit), beta))),
                 warnings = warns),
    glmer_object = list(
      how = "lme4::mkMerMod on glmer(..., devFunOnly = TRUE) (default control) evaluated at glmer_results.json's (theta, fixef)",
      minus2loglik = m2ll, rel_diff_vs_json = reldiff(m2ll, r$minus2loglik),
      fixef_max_rel_diff_vs_json = max(abs(reldiff(fixef(fit), beta))),
      u_max_abs_diff_vs_refit = max(abs(getME(fit, "u") - getME(refit, "u")))),
    theta_names = names(theta), fixef_names = names(beta),
    theta = unname(theta), fixef = as.list(beta),
    laplace_at_glmer = lap,
    deviance_components = comps,
    deviance_components_converged = cc,
    hessian = hess,
    rx_se = as.list(rx),
    rx_se_refit_max_rel_diff = max(abs(reldiff(rx_refit, rx))),
    condsd = rows(re[, c("grpvar", "term", "grp", "condval", "condsd")]),
    u = as.numeric(getME(fit, "u")), b = as.numeric(getME(fit, "b")),
    u_converged = uconv, u_converged_max_abs_diff = max(abs(uconv - as.numeric(getME(fit, "u")))),
    fitted = unname(as.numeric(fitted(fit))),
    residuals = res,
    predict_link_head = head20(predict(fit, type = "link")))

  # --- AGQ ladder for the single scalar random-effect models ----------------------------------
  if (startsWith(m$name, "cbpp_")) {
    sat <- -2 * sum(dbinom(d$incidence, d$size, d$incidence / d$size, log = TRUE))
    ks <- c(1L, 2L, 5L, 9L, 25L)
    vals <- vapply(ks, function(k) converged_eval(make_devfun(m, d, fam, k), p), 0)
    entry$agq <- list(
      at = sprintf("this model's glmer (theta, beta) (nAGQ = %d fit)", nAGQ),
      nAGQ = ks, values = vals,
      values_full_minus2loglik = ifelse(ks > 1, vals + sat, vals),
      saturated_minus2loglik = sat,
      convention = "values: devfun(c(theta, beta)) as glmer returns it: nAGQ = 1 is the full Laplace -2 log L (family aic() + ||u||^2 + log|L|^2); nAGQ > 1 drops the saturated -2 log L; values_full adds it back")
  }
  entry$seconds <- proc.time()[["elapsed"]] - t0
  out[[m$name]] <- entry
  cv <- if (nAGQ > 1) lap$agq$value else lap$value
  cat(sprintf("%-28s %6.1fs  glmer=%.10f  converged=%.10f  diff=%+.3e  single-call(1e-12) rel=%+.1e  polished spread=%.1e  hessSE maxrel=%s\n",
              m$name, entry$seconds, r$minus2loglik, cv, cv - r$minus2loglik,
              lap$stability$single_call_tol1e12_rel_diff_vs_converged, lap$stability$max_abs_rel_diff_polished,
              if (is.null(hess)) "-" else sprintf("%.2e", max(abs(unlist(hess$rel_diff_vs_glmer_fixef_se))))))
}

out <- c(list(`_meta` = list(
  made_by = "make_exact_reference.R", R = R.version.string,
  lme4 = as.character(packageVersion("lme4")), Matrix = as.character(packageVersion("Matrix")),
  numDeriv = as.character(packageVersion("numDeriv")), jsonlite = as.character(packageVersion("jsonlite")),
  tolPwrss = TOL, seconds = proc.time()[["elapsed"]] - t_start)), out)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           file.path(script_dir, "exact_reference.json"))
cat(sprintf("wrote %s (%.1fs)\n", file.path(script_dir, "exact_reference.json"), proc.time()[["elapsed"]] - t_start))
