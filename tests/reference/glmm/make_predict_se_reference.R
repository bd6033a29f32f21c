# Reference values for GlmerResult.predict(se_fit=True) (tests/test_glmm_predict_se.py): glmmTMB on cbpp.
#
# Run from anywhere, e.g. from the repository root:
#   Rscript tests/reference/glmm/make_predict_se_reference.R
# Paths are relative to THIS SCRIPT'S DIRECTORY: it reads data/cbpp.csv there and writes
# predict_se_reference.json there. Needs glmmTMB and TMB (made with glmmTMB 1.1.5, TMB 1.9.2,
# R 4.2.2) and jsonlite. Takes a few seconds.
#
# Model: glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), binomial (logit)), fitted
# by glmmTMB (Laplace, ML). Stored: its theta (log SD of the herd effect), sd = exp(theta), beta,
# b (conditional modes, herd levels 1..15), and for every row of the data and for a small newdata
# frame (seen herds; a herd "new" not in the data, allow.new.levels = TRUE):
#   fit          predict(type = "link")
#   se_fit       predict(type = "link", se.fit = TRUE)$se.fit: TMB's sdreport delta method, which
#                carries the uncertainty of theta as well as of beta and b
#   se_known     the theta-known value: a' C a, a = [x; z] (the row's fixed and random design),
#                C = the inverse of the (beta, b) block of TMB's exact (AD) Hessian of the joint
#                negative log-likelihood -log p(y | b) - log p(b) at (theta-hat, beta-hat, b-hat)
#                (MakeADFun on the fit's own data and map with random = NULL, so the tape is the
#                joint likelihood, differentiated twice). Conditioning on theta leaves (beta, b)
#                with that block as precision. For the new herd, z = 0 in eta and its effect has
#                no data, so it adds its prior variance sd^2 (its row/column of the joint Hessian
#                would be 1/sd^2 and nothing else).
#   se_map       glmmTMB's own predict(se.fit = TRUE) from a refit with theta held at theta-hat
#                (map = list(theta = factor(NA))): theta known, but beta's precision is the
#                Hessian of the Laplace approximation in beta (log|H_bb| curvature included)
#                rather than the Schur complement of the joint Hessian, so it differs a little
#                from se_known.
suppressMessages({
  library(glmmTMB)
  library(TMB)
  library(jsonlite)
})
script_dir <- local({
  a <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  if (length(a)) dirname(normalizePath(sub("^--file=", "", a[1]))) else file.path("tests", "reference", "glmm")
})
d <- read.csv(file.path(script_dir, "data", "cbpp.csv"), colClasses = c(herd = "character", period = "character"))
d$herd <- factor(d$herd, levels = as.character(sort(as.integer(unique(d$herd)))))
d$period <- factor(d$period)
form <- cbind(incidence, size - incidence) ~ period + (1 | herd)
fit <- glmmTMB(form, data = d, family = binomial)
if (fit$fit$convergence != 0) stop("glmmTMB did not converge")
obj <- fit$obj
par <- obj$env$last.par.best
theta <- unname(par[names(par) == "theta"])
beta <- unname(par[names(par) == "beta"])
b <- unname(par[names(par) == "b"])
sd <- exp(theta)

# the exact Hessian of the joint negative log-likelihood in every parameter (no Laplace)
e <- obj$env
joint <- MakeADFun(e$data, e$parameters, map = e$map, DLL = "glmmTMB", random = NULL, silent = TRUE)
stopifnot(identical(names(joint$par), names(par)))
ib <- which(names(par) %in% c("beta", "b"))
stopifnot(identical(names(par)[ib], c(rep("beta", length(beta)), rep("b", length(b)))))
grad_b <- max(abs(joint$gr(par)[names(par) == "b"]))      # b-hat is the inner optimum
C <- solve(joint$he(par)[ib, ib])

newdata <- data.frame(herd = c("1", "3", "7", "15", "new", "new", "2"),
                      period = c("1", "4", "2", "3", "2", "4", "4"),
                      incidence = 0L, size = 1L)
nd <- newdata
nd$herd <- factor(nd$herd, levels = c(levels(d$herd), "new"))
nd$period <- factor(nd$period, levels = levels(d$period))

design <- function(frame) {
  X <- model.matrix(~ period, frame)
  Z <- matrix(0, nrow(frame), length(levels(d$herd)))
  seen <- as.character(frame$herd) %in% levels(d$herd)
  Z[cbind(which(seen), match(as.character(frame$herd)[seen], levels(d$herd)))] <- 1
  list(A = cbind(X, Z), new = !seen)
}
known_se <- function(frame) {
  D <- design(frame)
  sqrt(rowSums((D$A %*% C) * D$A) + ifelse(D$new, sd^2, 0))
}

refit_map <- glmmTMB(form, data = d, family = binomial, map = list(theta = factor(NA)),
                     start = list(theta = theta))

rows <- function(frame, newdata) {
  args <- if (is.null(newdata)) list() else list(newdata = newdata, allow.new.levels = TRUE)
  p <- do.call(predict, c(list(fit, type = "link", se.fit = TRUE), args))
  pm <- do.call(predict, c(list(refit_map, type = "link", se.fit = TRUE), args))
  D <- design(frame)
  eta <- drop(D$A %*% c(beta, b))
  stopifnot(max(abs(eta - p$fit)) < 1e-10)     # newdata: glmmTMB re-runs the inner optimisation (2.7e-12 off)
  list(herd = as.character(frame$herd), period = as.character(frame$period),
       fit = unname(p$fit), se_fit = unname(p$se.fit), se_known = known_se(frame), se_map = unname(pm$se.fit))
}

out <- list(
  made_with = sprintf("%s; glmmTMB %s; TMB %s; jsonlite %s", R.version.string, packageVersion("glmmTMB"),
                      packageVersion("TMB"), packageVersion("jsonlite")),
  formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
  family = "binomial",
  theta_log_sd = theta, sd = sd, beta = beta, beta_names = colnames(model.matrix(~ period, d)),
  b = b, herd_levels = levels(d$herd),
  loglik = as.numeric(logLik(fit)), max_abs_grad_b = grad_b,
  map_refit_beta = unname(refit_map$fit$par),
  fitted = rows(d, NULL),
  newdata = rows(nd, nd)
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(script_dir, "predict_se_reference.json"))
r <- out$fitted$se_fit / out$fitted$se_known - 1
cat(sprintf("theta-uncertainty addition (se_fit / se_known - 1, fitted rows): %.4f to %.4f\n", min(r), max(r)))
r <- out$newdata$se_fit / out$newdata$se_known - 1
cat(sprintf("                                              (newdata rows): %.4f to %.4f\n", min(r), max(r)))
r <- c(out$fitted$se_map / out$fitted$se_known, out$newdata$se_map / out$newdata$se_known) - 1
cat(sprintf("map refit vs joint Hessian (se_map / se_known - 1): %.5f to %.5f\n", min(r), max(r)))
