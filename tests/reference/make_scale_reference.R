# lme4's answers when the response or the prior weights are multiplied by a constant
# (issue 20: equivariance).  Rscript tests/reference/make_scale_reference.R  (repository root)
# Data: sleepstudy2 with the weights of make_weights_reference.R, w = 0.5 + 0.5 * (Days %% 4).
# lme4's convention Cov(e) = sigma^2 W^-1: weights * c give theta / sqrt(c), sigma * sqrt(c),
# the same fixed effects and likelihood; y * c gives fixef * c, sigma * c, the same theta.
suppressMessages({library(lme4); library(jsonlite)})
s2 <- read.csv("sparsemixed/datasets/data/sleepstudy2.csv", stringsAsFactors = TRUE)
s2$Subject <- factor(s2$Subject)
s2$w <- 0.5 + 0.5 * (s2$Days %% 4)
ctrl <- lmerControl(optCtrl = list(ftol_abs = 1e-12, xtol_abs = 1e-10))
out <- list()
one <- function(fit) list(fixef = unname(fixef(fit)), theta = unname(getME(fit, "theta")),
                          sigma = sigma(fit), objective = REMLcrit(fit),
                          singular = isSingular(fit))
for (cw in c(1e-6, 1e-3, 1, 1e3)) {
  s2$wc <- s2$w * cw
  fit <- lmer(Reaction ~ Days + (Days | Subject), s2, weights = wc, control = ctrl)
  out[[sprintf("weights_%g", cw)]] <- c(list(kind = "weights", c = cw), one(fit))
}
for (cy in c(1e-6, 1e6)) {
  s2$yc <- s2$Reaction * cy
  fit <- lmer(yc ~ Days + (Days | Subject), s2, weights = w, control = ctrl)
  out[[sprintf("response_%g", cy)]] <- c(list(kind = "response", c = cy), one(fit))
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/lme4_scale.json")
