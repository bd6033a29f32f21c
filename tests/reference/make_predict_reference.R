# Reference for sparsemixed/inference/predict.py: lme4's predict() on new data, Wald and
# bootstrap (percentile) intervals, and the pieces of the prediction variance.
#
#   predict:   X_new beta + Z_new b (+ offset), re.form = NULL / NA / ~(1|g), allow.new.levels
#   se.fixed:  sqrt(diag(X_new V X_new')),  V = vcov(fit)
#   condvar:   diag(Z_new C Z_new'),  C = sigma^2 Lambda (Lambda'Z'Z Lambda + I)^-1 Lambda'
#              (dense, from getME; Z_new from lFormula on the fit's data with the new rows appended)
#   confint:   method = "Wald" (lme4), and the percentile step of method = "boot": a bootMer
#              sample of lme4's own bootFun (sd/cor scale) and confint(<bootMer>, type = "perc"),
#              which is boot::boot.ci's perc (norm.inter) per parameter.
#   residuals: type = "pearson" (sqrt(w) (y - mu)) and scaled = TRUE (divided by sigma)
#
# Run from the repository root:
#   Rscript tests/reference/make_predict_reference.R
# (needs lme4, jsonlite, boot).  Writes tests/reference/lme4_predict.json.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

root <- "."
load_data <- function(name, factors) {
  df <- read.csv(file.path(root, "sparsemixed/datasets/data", paste0(name, ".csv")))
  for (v in factors) df[[v]] <- factor(df[[v]])
  df
}

# lme4's bootFun of confint.merMod(method = "boot"): sd/cor of each term, sigma, fixef
boot_fun <- function(x) {
  ss <- lme4:::Cv_to_Sv(x@theta, n = lengths(x@cnms), s = sigma(x))
  vn <- lme4:::profnames(x, TRUE, useSc = TRUE)
  c(setNames(ss, vn), fixef(x))
}

# rows of Z and X for new data: append them to the fit's data so every level keeps its column
new_design <- function(fit, data, newdata, response) {
  nd <- newdata
  nd[[response]] <- 0
  all <- rbind(data[, names(nd)], nd)
  lf <- lFormula(formula(fit), all, control = lmerControl(check.nobs.vs.nlev = "ignore",
                 check.nobs.vs.rankZ = "ignore", check.nlev.gtr.1 = "ignore"))
  idx <- nrow(data) + seq_len(nrow(newdata))
  list(X = lf$X[idx, , drop = FALSE], Z = t(lf$reTrms$Zt)[idx, , drop = FALSE])
}

cond_cov <- function(fit) {
  Lam <- getME(fit, "Lambda")
  Z <- getME(fit, "Z")
  W <- Diagonal(x = weights(fit))
  M <- t(Lam) %*% t(Z) %*% W %*% Z %*% Lam + Diagonal(ncol(Z))
  as.matrix(sigma(fit)^2 * Lam %*% solve(M) %*% t(Lam))
}

variances <- function(fit, data, newdata, response) {
  d <- new_design(fit, data, newdata, response)
  X <- as.matrix(d$X)
  Z <- as.matrix(d$Z)
  V <- as.matrix(vcov(fit))
  list(se_fixed = I(sqrt(rowSums((X %*% V) * X))),
       condvar = I(rowSums((Z %*% cond_cov(fit)) * Z)))
}

df_json <- function(df) {
  out <- lapply(df, function(v) if (is.factor(v)) as.character(v) else v)
  out
}

out <- list()

# -- sleepstudy, correlated slope ---------------------------------------------------------
ss <- load_data("sleepstudy", "Subject")
fs <- lmer(Reaction ~ Days + (Days | Subject), ss, REML = TRUE)
nd1 <- data.frame(Days = c(0, 2.5, 9, 12, 4, 7.25),
                  Subject = factor(c("308", "309", "330", "372", "308", "352"), levels = levels(ss$Subject)))
nd1_new <- data.frame(Days = c(1, 5, 3), Subject = c("308", "999", "1000"))
vv <- variances(fs, ss, nd1, "Reaction")
set.seed(20240611)
bb <- bootMer(fs, boot_fun, nsim = 40, use.u = FALSE, type = "parametric")
ci_perc <- lme4:::confint.bootMer(bb, level = 0.95, type = "perc")
ci_perc90 <- lme4:::confint.bootMer(bb, level = 0.90, type = "perc")
ci_wald <- confint(fs, method = "Wald")
ci_wald90 <- confint(fs, method = "Wald", level = 0.9, parm = c("Days", ".sig02"))
set.seed(1)
ci_boot500 <- suppressMessages(confint(fs, method = "boot", nsim = 500))
out$sleepstudy <- list(
  data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", reml = TRUE,
  theta = I(unname(getME(fs, "theta"))), sigma = sigma(fs),
  newdata = df_json(nd1), newdata_new = df_json(nd1_new),
  pred = I(unname(predict(fs, nd1))),
  pred_re_na = I(unname(predict(fs, nd1, re.form = NA))),
  pred_re_int = I(unname(predict(fs, nd1, re.form = ~(1 | Subject)))),
  pred_re_slope = I(unname(predict(fs, nd1, re.form = ~(0 + Days | Subject)))),
  pred_new = I(unname(predict(fs, nd1_new, allow.new.levels = TRUE))),
  fitted = I(unname(fitted(fs))),
  se_fixed = vv$se_fixed, condvar = vv$condvar,
  confint_wald = list(rownames = I(rownames(ci_wald)), colnames = I(colnames(ci_wald)),
                      lower = I(unname(ci_wald[, 1])), upper = I(unname(ci_wald[, 2]))),
  confint_wald90 = list(rownames = I(rownames(ci_wald90)), colnames = I(colnames(ci_wald90)),
                        lower = I(unname(ci_wald90[, 1])), upper = I(unname(ci_wald90[, 2]))),
  boot_t0 = as.list(bb$t0), boot_t = unname(bb$t), boot_names = I(names(bb$t0)),
  boot_perc = list(rownames = I(rownames(ci_perc)), colnames = I(colnames(ci_perc)),
                   lower = I(unname(ci_perc[, 1])), upper = I(unname(ci_perc[, 2]))),
  boot_perc90 = list(colnames = I(colnames(ci_perc90)),
                     lower = I(unname(ci_perc90[, 1])), upper = I(unname(ci_perc90[, 2]))),
  boot500 = list(rownames = I(rownames(ci_boot500)),
                 lower = I(unname(ci_boot500[, 1])), upper = I(unname(ci_boot500[, 2])))
)

# -- Penicillin, crossed ------------------------------------------------------------------
pen <- load_data("Penicillin", c("plate", "sample"))
fp <- lmer(diameter ~ 1 + (1 | plate) + (1 | sample), pen, REML = TRUE)
nd2 <- data.frame(plate = factor(c("a", "b", "m", "x", "c"), levels = levels(pen$plate)),
                  sample = factor(c("A", "F", "C", "D", "B"), levels = levels(pen$sample)))
nd2_new <- data.frame(plate = c("a", "zz", "q", "zz"), sample = c("A", "B", "G", "G"))
vv2 <- variances(fp, pen, nd2, "diameter")
out$penicillin <- list(
  data = "Penicillin", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", reml = TRUE,
  theta = I(unname(getME(fp, "theta"))), sigma = sigma(fp),
  newdata = df_json(nd2), newdata_new = df_json(nd2_new),
  pred = I(unname(predict(fp, nd2))),
  pred_re_na = I(unname(predict(fp, nd2, re.form = NA))),
  pred_re_plate = I(unname(predict(fp, nd2, re.form = ~(1 | plate)))),
  pred_re_sample = I(unname(predict(fp, nd2, re.form = ~(1 | sample)))),
  pred_new = I(unname(predict(fp, nd2_new, allow.new.levels = TRUE))),
  pred_new_plate = I(unname(predict(fp, nd2_new, re.form = ~(1 | plate), allow.new.levels = TRUE))),
  se_fixed = vv2$se_fixed, condvar = vv2$condvar
)

# -- sleepstudy2: fixed factor, prior weights and an offset ---------------------------------
s2 <- load_data("sleepstudy2", c("Subject", "phase"))
n2 <- nrow(s2)
s2$w <- rep(c(1, 2, 0.5), length.out = n2)
s2$off <- 0.3 * s2$Days + rep(c(0, 5, -5), length.out = n2)
# lme4 1.1-31 drops an offset= argument on new data; offset() in the formula is kept, and
# is the same model as sparsemixed's offset="off"
fw <- lmer(Reaction ~ Days + phase + offset(off) + (1 | Subject), s2, weights = w, REML = TRUE)
nd3 <- data.frame(Days = c(1, 6, 8, 3), phase = factor(c("early", "late", "late", "early"), levels = levels(s2$phase)),
                  Subject = factor(c("308", "309", "371", "372"), levels = levels(s2$Subject)),
                  off = c(0, 10, -3, 2.5))
vv3 <- variances(fw, s2, nd3, "Reaction")
out$weighted_offset <- list(
  data = "sleepstudy2", formula = "Reaction ~ Days + phase + (1 | Subject)", reml = TRUE,
  weights = I(s2$w), offset = I(s2$off),
  theta = I(unname(getME(fw, "theta"))), sigma = sigma(fw),
  newdata = df_json(nd3),
  pred = I(unname(predict(fw, nd3))),
  pred_re_na = I(unname(predict(fw, nd3, re.form = NA))),
  fitted = I(unname(fitted(fw))),
  se_fixed = vv3$se_fixed, condvar = vv3$condvar,
  resid_pearson = I(unname(residuals(fw, type = "pearson"))),
  resid_pearson_scaled = I(unname(residuals(fw, type = "pearson", scaled = TRUE))),
  resid_response = I(unname(residuals(fw, type = "response")))
)

out$format_perc <- lapply(c(0.95, 0.9, 0.99, 0.999, 0.8, 0.5, 0.683), function(l) {
  a <- (1 - l) / 2
  list(level = l, names = I(paste(format(100 * c(a, 1 - a), trim = TRUE, scientific = FALSE, digits = 3), "%")))
})
out[["_meta"]] <- list(R = R.version.string, lme4 = format(packageVersion("lme4")),
                       boot = format(packageVersion("boot")))
write_json(out, file.path(root, "tests/reference/lme4_predict.json"), digits = NA,
           auto_unbox = TRUE, pretty = TRUE)
cat("wrote tests/reference/lme4_predict.json\n")
