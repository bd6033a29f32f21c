# Reference for sparsemixed/inference/compare.py and vartests.py (tests/test_compare.py).
#
#   anova:     lme4's anova(m0, m1, ..., refit=) for nested pairs/triples
#              (npar, AIC, BIC, logLik, deviance = -2 logLik,
#               Chisq = 2 max(0, diff logLik), Df = diff npar, Pr(>Chisq))
#   variance:  LRT statistics 2 (logLik_full - logLik_reduced) from lme4 REML (or ML) fits,
#              with the boundary-corrected p-values computed here by hand:
#                one scalar variance dropped:        0.5 P(chi2_1 > T)           (+ 0.5 P(chi2_0 > T) = 0)
#                a correlated slope dropped (r = 1): 0.5 P(chi2_1 > T) + 0.5 P(chi2_2 > T)
#                a correlation dropped (interior):   P(chi2_1 > T)
#              the "no random effect" reduced model is lm(), logLik(lm, REML = TRUE)
#   Nakagawa:  R2m = s2_f / (s2_f + s2_r + s2_e),  R2c = (s2_f + s2_r) / (s2_f + s2_r + s2_e)
#              s2_f = var(X beta) (n - 1 denominator, as MuMIn/performance),
#              s2_r = sum_k mean_i z_ik' Sigma_k z_ik (Johnson 2014; Nakagawa et al. 2017),
#              s2_e = sigma^2 -- computed from lme4's VarCorr and getME(, "Z")
#   one-way:   ANOVA table of balanced one-way data by hand (tapply), checked against aov()
#
# Run from the repository root:
#   Rscript tests/reference/make_compare_reference.R
# (needs lme4, jsonlite).  Writes tests/reference/lme4_compare.json.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

root <- "."
factors <- list(sleepstudy = "Subject", sleepstudy2 = c("Subject", "phase"), Dyestuff = "Batch",
                Dyestuff2 = "Batch", Penicillin = c("plate", "sample"),
                Pastes = c("batch", "cask", "sample"))
load_data <- function(name) {
  df <- read.csv(file.path(root, "sparsemixed/datasets/data", paste0(name, ".csv")))
  for (v in factors[[name]]) df[[v]] <- factor(df[[v]])
  df
}
ctrl <- lmerControl(optimizer = "bobyqa",
                    optCtrl = list(rhobeg = 2e-3, rhoend = 1e-10, maxfun = 1e5))
fitm <- function(f, d, reml) lmer(as.formula(f), d, REML = reml, control = ctrl)

# ---- anova ---------------------------------------------------------------------------
comparisons <- list(
  sleepstudy_re = list(data = "sleepstudy", reml = TRUE, refit = TRUE,
    formulas = c("Reaction ~ Days + (1|Subject)", "Reaction ~ Days + (Days|Subject)")),
  sleepstudy_re_norefit = list(data = "sleepstudy", reml = TRUE, refit = FALSE,
    formulas = c("Reaction ~ Days + (1|Subject)", "Reaction ~ Days + (Days|Subject)")),
  sleepstudy_fixed = list(data = "sleepstudy", reml = TRUE, refit = TRUE,
    formulas = c("Reaction ~ 1 + (Days|Subject)", "Reaction ~ Days + (Days|Subject)")),
  sleepstudy_three = list(data = "sleepstudy", reml = TRUE, refit = TRUE,
    formulas = c("Reaction ~ Days + (1|Subject)", "Reaction ~ Days + (1|Subject) + (0 + Days|Subject)",
                 "Reaction ~ Days + (Days|Subject)")),
  penicillin_re = list(data = "Penicillin", reml = TRUE, refit = TRUE,
    formulas = c("diameter ~ 1 + (1|plate)", "diameter ~ 1 + (1|plate) + (1|sample)")),
  penicillin_re_norefit = list(data = "Penicillin", reml = TRUE, refit = FALSE,
    formulas = c("diameter ~ 1 + (1|plate)", "diameter ~ 1 + (1|plate) + (1|sample)")),
  sleepstudy2_fixed_ml = list(data = "sleepstudy2", reml = FALSE, refit = TRUE,
    formulas = c("Reaction ~ Days + (Days|Subject)", "Reaction ~ Days + phase + (Days|Subject)"))
)
out <- list(anova = list(), variance = list(), nakagawa = list(), oneway = list())
for (nm in names(comparisons)) {
  cmp <- comparisons[[nm]]
  d <- load_data(cmp$data)
  mods <- lapply(cmp$formulas, fitm, d = d, reml = cmp$reml)
  names(mods) <- paste0("m", seq_along(mods) - 1)
  a <- suppressMessages(do.call(anova, c(unname(mods), list(refit = cmp$refit, model.names = names(mods)))))
  rows <- list()
  for (j in seq_len(nrow(a))) {
    rows[[j]] <- list(name = rownames(a)[j], npar = a$npar[j], AIC = a$AIC[j], BIC = a$BIC[j],
                      logLik = a$logLik[j], deviance = a$deviance[j], Chisq = a$Chisq[j],
                      Df = a$Df[j], p = a[["Pr(>Chisq)"]][j])
  }
  cat(sprintf("%-24s %s\n", nm, paste(format(a$Chisq), collapse = " ")))
  out$anova[[nm]] <- list(data = cmp$data, reml = cmp$reml, refit = cmp$refit,
                          formulas = I(cmp$formulas), rows = rows)
}

# ---- tests of variance components --------------------------------------------------------
mix <- function(T, dfs, w) sum(w * ifelse(dfs == 0, as.numeric(T <= 0), pchisq(T, pmax(dfs, 1), lower.tail = FALSE)))
vtests <- list(
  sleepstudy_slope = list(data = "sleepstudy", reml = TRUE, full = "Reaction ~ Days + (Days|Subject)",
    reduced = "Reaction ~ Days + (1|Subject)", dfs = c(1, 2), w = c(0.5, 0.5), naive_df = 2),
  sleepstudy_uncorr_slope = list(data = "sleepstudy", reml = TRUE,
    full = "Reaction ~ Days + (1|Subject) + (0 + Days|Subject)",
    reduced = "Reaction ~ Days + (1|Subject)", dfs = c(0, 1), w = c(0.5, 0.5), naive_df = 1),
  sleepstudy_correlation = list(data = "sleepstudy", reml = TRUE, full = "Reaction ~ Days + (Days|Subject)",
    reduced = "Reaction ~ Days + (1|Subject) + (0 + Days|Subject)", dfs = 1, w = 1, naive_df = 1),
  penicillin_sample = list(data = "Penicillin", reml = TRUE, full = "diameter ~ 1 + (1|plate) + (1|sample)",
    reduced = "diameter ~ 1 + (1|plate)", dfs = c(0, 1), w = c(0.5, 0.5), naive_df = 1),
  sleepstudy_ml_fixed_differ = list(data = "sleepstudy", reml = FALSE, full = "Reaction ~ Days + (Days|Subject)",
    reduced = "Reaction ~ 1 + (1|Subject)", dfs = c(2, 3), w = c(0.5, 0.5), naive_df = 3),
  dyestuff_vs_lm = list(data = "Dyestuff", reml = TRUE, full = "Yield ~ 1 + (1|Batch)",
    reduced = NA, lm = "Yield ~ 1", dfs = c(0, 1), w = c(0.5, 0.5), naive_df = 1),
  dyestuff2_vs_lm = list(data = "Dyestuff2", reml = TRUE, full = "Yield ~ 1 + (1|Batch)",
    reduced = NA, lm = "Yield ~ 1", dfs = c(0, 1), w = c(0.5, 0.5), naive_df = 1)
)
for (nm in names(vtests)) {
  v <- vtests[[nm]]
  d <- load_data(v$data)
  full <- fitm(v$full, d, v$reml)
  ll_full <- as.numeric(logLik(full))
  if (is.na(v$reduced)) {
    ll_red <- as.numeric(logLik(lm(as.formula(v$lm), d), REML = v$reml))
  } else {
    ll_red <- as.numeric(logLik(fitm(v$reduced, d, v$reml)))
  }
  T <- max(0, 2 * (ll_full - ll_red))
  out$variance[[nm]] <- list(data = v$data, reml = v$reml, full = v$full,
                             reduced = if (is.na(v$reduced)) NULL else v$reduced,
                             logLik_full = ll_full, logLik_reduced = ll_red, statistic = T,
                             mixture_df = I(v$dfs), mixture_weights = I(v$w),
                             p_value = mix(T, v$dfs, v$w), naive_df = v$naive_df,
                             p_naive = pchisq(T, v$naive_df, lower.tail = FALSE))
  cat(sprintf("%-28s T = %.6f  p = %.6g  naive %.6g\n", nm, T, mix(T, v$dfs, v$w),
              pchisq(T, v$naive_df, lower.tail = FALSE)))
}

# ---- Nakagawa R2 ---------------------------------------------------------------------
nakagawa <- function(fit) {
  varF <- var(as.vector(getME(fit, "X") %*% fixef(fit)))
  vc <- VarCorr(fit)                   # one covariance matrix per term, in Z's term order
  Gp <- getME(fit, "Gp")
  G <- bdiag(lapply(seq_along(vc), function(k) {
    S <- as.matrix(vc[[k]])
    kronecker(Diagonal((Gp[k + 1] - Gp[k]) / nrow(S)), S)
  }))
  L <- getME(fit, "Lambda")             # cross-check: G = sigma^2 Lambda Lambda'
  stopifnot(max(abs(G - sigma(fit)^2 * tcrossprod(L))) < 1e-8 * max(abs(G)))
  Z <- getME(fit, "Z")
  varR <- mean(rowSums(as.matrix((Z %*% G) * Z)))   # mean_i z_i' G z_i
  varE <- sigma(fit)^2
  tot <- varF + varR + varE
  list(var_fixed = varF, var_random = varR, var_residual = varE,
       marginal = varF / tot, conditional = (varF + varR) / tot)
}
nak_models <- list(
  sleepstudy_slopes = list(data = "sleepstudy", formula = "Reaction ~ Days + (Days|Subject)", reml = TRUE),
  penicillin = list(data = "Penicillin", formula = "diameter ~ 1 + (1|plate) + (1|sample)", reml = TRUE),
  sleepstudy2_factor_slope = list(data = "sleepstudy2", formula = "Reaction ~ Days + (0 + phase|Subject)", reml = TRUE),
  sleepstudy_slopes_ml = list(data = "sleepstudy", formula = "Reaction ~ Days + (Days|Subject)", reml = FALSE)
)
for (nm in names(nak_models)) {
  m <- nak_models[[nm]]
  d <- load_data(m$data)
  fit <- fitm(m$formula, d, m$reml)
  r <- nakagawa(fit)
  if (nm == "sleepstudy_slopes") {   # independent: z_i = (1, Days_i) directly
    S <- as.matrix(VarCorr(fit)$Subject)
    z <- cbind(1, d$Days)
    stopifnot(abs(mean(rowSums((z %*% S) * z)) - r$var_random) < 1e-8 * r$var_random)
  }
  cat(sprintf("%-26s R2m %.6f  R2c %.6f\n", nm, r$marginal, r$conditional))
  out$nakagawa[[nm]] <- c(list(data = m$data, formula = m$formula, reml = m$reml), r)
}

# ---- balanced one-way ANOVA by hand ---------------------------------------------------------
for (nm in c("Dyestuff", "Dyestuff2")) {
  d <- load_data(nm)
  y <- d$Yield; g <- d$Batch
  a <- nlevels(g); n <- length(y) / a
  stopifnot(all(table(g) == n))
  ybar_i <- tapply(y, g, mean); ybar <- mean(y)
  SSA <- n * sum((ybar_i - ybar)^2)
  SSE <- sum((y - ybar_i[as.integer(g)])^2)
  MSA <- SSA / (a - 1); MSE <- SSE / (a * (n - 1))
  Fs <- MSA / MSE
  av <- summary(aov(Yield ~ Batch, d))[[1]]
  stopifnot(abs(av[["Sum Sq"]][1] - SSA) < 1e-8 * SSA, abs(av[["F value"]][1] - Fs) < 1e-8 * Fs)
  reml <- fitm("Yield ~ 1 + (1|Batch)", d, TRUE)
  ml <- fitm("Yield ~ 1 + (1|Batch)", d, FALSE)
  vr <- function(f) c(as.numeric(VarCorr(f)$Batch), sigma(f)^2)
  out$oneway[[nm]] <- list(a = a, n = n, mean = ybar, SSA = SSA, SSE = SSE, MSA = MSA, MSE = MSE,
                           df_A = a - 1, df_E = a * (n - 1), F = Fs,
                           p_value = pf(Fs, a - 1, a * (n - 1), lower.tail = FALSE),
                           lme4_reml = I(vr(reml)), lme4_ml = I(vr(ml)))
  cat(sprintf("%-10s SSA %.6f SSE %.6f F %.6f\n", nm, SSA, SSE, Fs))
}

out[["_meta"]] <- list(R = R.version.string, lme4 = format(packageVersion("lme4")),
                       optimizer = "bobyqa, rhoend 1e-10 (tight, so logLik agrees to ~1e-8)")
write_json(out, file.path(root, "tests/reference/lme4_compare.json"), digits = NA,
           auto_unbox = TRUE, pretty = TRUE, na = "null")
