# Reference for sparsemixed/inference/emmeans.py: estimated marginal means and contrasts
# from R's emmeans (1.8.4) on lme4 1.1-31 / lmerTest 3.1-3 / pbkrtest fits.
#
# Data (simulated here with a fixed seed and stored in the JSON, so that Python fits the
# same rows): a psycholinguistic design, 60 subjects x 40 items, cond (a, b, c) assigned
# by a Latin square (within subjects and within items), freq (high, low) between items,
# len (word length, numeric, per item), rt (ms) and acc (0/1); ~10% of the rows dropped
# at random so that cells are unbalanced.
#
# Models
#   psych   lmerTest::lmer(rt ~ cond * freq + (1 + cond | subj) + (1 + cond | item))   REML
#   cov     lmerTest::lmer(rt ~ cond * len + freq + (1 | subj) + (1 | item))          REML
#   bin     glmer(acc ~ cond * freq + (1 | subj) + (1 | item), binomial)
#   pois    glmer(errors ~ cond + freq + (1 | subj), poisson)
#
# For every model: theta, sigma, fixef, vcov (lmer: and pbkrtest's vcovAdj), so that the
# Python side can be evaluated at lme4's optimum; then the tables listed in `cases` below,
# each as.data.frame(summary(...)) (emmeans' own columns) plus confint() for contrasts and
# the printed text.
#
# Run from the repository root:
#   Rscript tests/reference/make_emmeans_reference.R
# (needs lme4, lmerTest, pbkrtest, emmeans, jsonlite).  Writes
# tests/reference/emmeans_reference.json.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(emmeans)
  library(jsonlite)
})
emm_options(pbkrtest.limit = 1e6, lmerTest.limit = 1e6, msg.interaction = FALSE)

# ---- data -------------------------------------------------------------------------------
set.seed(20240611)
nsubj <- 60; nitem <- 40
d <- expand.grid(subj = seq_len(nsubj), item = seq_len(nitem))
d$cond <- c("a", "b", "c")[(d$subj + d$item) %% 3 + 1]
freq_item <- rep(c("high", "low"), length.out = nitem)
len_item <- sample(3:10, nitem, replace = TRUE)
d$freq <- freq_item[d$item]
d$len <- len_item[d$item]
S <- diag(c(50, 25, 30)) %*% matrix(c(1, 0.2, 0.1, 0.2, 1, 0.3, 0.1, 0.3, 1), 3) %*% diag(c(50, 25, 30))
I <- diag(c(35, 22, 20)^2)
bs <- MASS::mvrnorm(nsubj, rep(0, 3), S)
bi <- MASS::mvrnorm(nitem, rep(0, 3), I)
X3 <- cbind(1, d$cond == "b", d$cond == "c")
d$rt <- 600 + 25 * (d$cond == "b") + 40 * (d$cond == "c") + 30 * (d$freq == "low") +
  15 * (d$cond == "b") * (d$freq == "low") - 10 * (d$cond == "c") * (d$freq == "low") +
  6 * (d$len - 6) + rowSums(X3 * bs[d$subj, ]) + rowSums(X3 * bi[d$item, ]) + rnorm(nrow(d), 0, 60)
eta <- 1.5 - 0.3 * (d$cond == "b") - 0.6 * (d$cond == "c") - 0.5 * (d$freq == "low") +
  0.3 * (d$cond == "c") * (d$freq == "low") + rnorm(nsubj, 0, 0.6)[d$subj] + rnorm(nitem, 0, 0.4)[d$item]
d$acc <- rbinom(nrow(d), 1, plogis(eta))
d$errors <- rpois(nrow(d), exp(0.2 + 0.25 * (d$cond == "b") + 0.4 * (d$cond == "c") +
                                0.3 * (d$freq == "low") + rnorm(nsubj, 0, 0.3)[d$subj]))
d$subj <- sprintf("s%02d", d$subj)
d$item <- sprintf("i%02d", d$item)
d <- d[-sample(nrow(d), round(0.1 * nrow(d))), ]
d <- d[order(d$subj, d$item), ]
rownames(d) <- NULL
for (v in c("subj", "item", "cond", "freq")) d[[v]] <- factor(d[[v]])

# ---- helpers ----------------------------------------------------------------------------
tab <- function(x) {
  df <- as.data.frame(x)
  for (v in names(df)) if (is.factor(df[[v]])) df[[v]] <- as.character(df[[v]])
  list(cols = I(names(df)), values = lapply(df, function(col) if (is.numeric(col)) I(unname(col)) else I(col)))
}
shown <- function(x) paste(capture.output(print(x)), collapse = "\n")
emm_case <- function(e) list(summary = tab(summary(e)), text = shown(e))
con_case <- function(cn, ...) {
  set.seed(1)   # adjust = "mvt" integrates by randomized quasi-Monte Carlo (mvtnorm)
  s <- summary(cn, ...)
  set.seed(1)
  ci <- confint(cn, ...)
  list(summary = tab(s), confint = tab(ci), text = shown(s), confint_text = shown(ci))
}
tab_case <- function(s) list(summary = tab(s), text = shown(s))
fit_info <- function(fit) {
  out <- list(theta = I(unname(getME(fit, "theta"))), fixef = I(unname(fixef(fit))),
              fixef_names = I(names(fixef(fit))), vcov = unname(as.matrix(vcov(fit))))
  if (isLMM(fit)) {
    out$sigma <- sigma(fit)
    out$vcov_adj <- unname(as.matrix(vcovAdj(fit)))
  }
  out
}

out <- list()
out$data <- list(subj = I(as.character(d$subj)), item = I(as.character(d$item)),
                 cond = I(as.character(d$cond)), freq = I(as.character(d$freq)),
                 len = I(d$len), rt = I(d$rt), acc = I(d$acc), errors = I(d$errors))

# ---- psych: rt ~ cond * freq + (1 + cond | subj) + (1 + cond | item) ----------------------
psych <- lmerTest::lmer(rt ~ cond * freq + (1 + cond | subj) + (1 + cond | item), d, REML = TRUE)
stopifnot(!isSingular(psych))
P <- fit_info(psych)
P$formula <- "rt ~ cond * freq + (1 + cond | subj) + (1 + cond | item)"
e_s <- emmeans(psych, "cond", by = "freq", lmer.df = "satterthwaite")
e_k <- emmeans(psych, "cond", by = "freq", lmer.df = "kenward-roger")
e_cf <- emmeans(psych, c("cond", "freq"), lmer.df = "satterthwaite")
e_c <- emmeans(psych, "cond", lmer.df = "satterthwaite")
P$cases <- list(
  emm_cond_by_freq = emm_case(e_s),
  emm_cond_by_freq_kr = emm_case(e_k),
  emm_cond_freq = emm_case(e_cf),
  emm_cond = emm_case(e_c),
  emm_cond_prop = emm_case(emmeans(psych, "cond", lmer.df = "satterthwaite", weights = "proportional")),
  emm_freq = emm_case(emmeans(psych, "freq", lmer.df = "satterthwaite")),
  emm_freq_by_cond_kr = emm_case(emmeans(psych, "freq", by = "cond", lmer.df = "kenward-roger")),
  emm_cond_level90 = list(summary = tab(confint(e_c, level = 0.90))),
  pairs_tukey = con_case(pairs(e_s)),
  pairs_tukey_kr = con_case(pairs(e_k)),
  pairs_holm = con_case(pairs(e_s), adjust = "holm"),
  pairs_bonferroni = con_case(pairs(e_s), adjust = "bonferroni"),
  pairs_sidak = con_case(pairs(e_s), adjust = "sidak"),
  pairs_none = con_case(pairs(e_s), adjust = "none"),
  pairs_fdr = con_case(pairs(e_s), adjust = "fdr"),
  pairs_scheffe = con_case(pairs(e_s), adjust = "scheffe"),
  pairs_all6_tukey = con_case(pairs(e_cf)),
  pairs_nobys_tukey = con_case(contrast(e_s, "pairwise", by = NULL)),
  revpairwise = con_case(contrast(e_s, "revpairwise")),
  trt_vs_ctrl = con_case(contrast(e_s, "trt.vs.ctrl")),
  trt_vs_ctrl_ref3 = con_case(contrast(e_s, "trt.vs.ctrl", ref = 3)),
  trt_vs_ctrl_tukey = con_case(contrast(e_s, "trt.vs.ctrl"), adjust = "tukey"),
  poly = con_case(contrast(e_s, "poly")),
  eff = con_case(contrast(e_s, "eff")),
  custom = con_case(contrast(e_s, list(b_vs_a = c(-1, 1, 0), bc_vs_a = c(-1, 0.5, 0.5)))),
  custom_holm = con_case(contrast(e_s, list(b_vs_a = c(-1, 1, 0), bc_vs_a = c(-1, 0.5, 0.5)),
                                  adjust = "holm")),
  pairs_freq_by_cond = con_case(pairs(emmeans(psych, "freq", by = "cond", lmer.df = "satterthwaite"))),
  interaction_pairwise = con_case(contrast(e_cf, interaction = "pairwise")),
  consec_mvt = con_case(contrast(e_s, "consec")),
  pairs_mvt = con_case(pairs(e_s), adjust = "mvt"),
  pairs_both = tab_case(summary(pairs(e_s), infer = c(TRUE, TRUE))),
  emm_test_null = tab_case(test(e_c, null = 600)),
  emm_regrid = emm_case(regrid(e_c)),
  pairs_regrid = con_case(pairs(regrid(e_c)))
)
out$psych <- P

# ---- cov: a numeric covariate -------------------------------------------------------------
covm <- lmerTest::lmer(rt ~ cond * len + freq + (1 | subj) + (1 | item), d, REML = TRUE)
C <- fit_info(covm)
C$formula <- "rt ~ cond * len + freq + (1 | subj) + (1 | item)"
C$len_mean <- mean(d$len)
e_cov <- emmeans(covm, "cond", lmer.df = "satterthwaite")
e_at <- emmeans(covm, "cond", by = "len", at = list(len = c(4, 8)), lmer.df = "satterthwaite")
C$cases <- list(
  emm_cond = emm_case(e_cov),
  emm_cond_kr = emm_case(emmeans(covm, "cond", lmer.df = "kenward-roger")),
  emm_cond_by_len_at = emm_case(e_at),
  emm_freq_at_len5 = emm_case(emmeans(covm, "freq", at = list(len = 5), lmer.df = "satterthwaite")),
  pairs_cov = con_case(pairs(e_cov)),
  pairs_by_len_at = con_case(pairs(e_at))
)
out$cov <- C

# ---- bin: binomial glmer ------------------------------------------------------------------
bin <- glmer(acc ~ cond * freq + (1 | subj) + (1 | item), d, family = binomial)
B <- fit_info(bin)
B$formula <- "acc ~ cond * freq + (1 | subj) + (1 | item)"
b_link <- emmeans(bin, "cond", by = "freq")
b_resp <- emmeans(bin, "cond", by = "freq", type = "response")
b_c <- emmeans(bin, "cond", type = "response")
B$cases <- list(
  emm_link = emm_case(b_link),
  emm_response = emm_case(b_resp),
  emm_cond_response = emm_case(b_c),
  emm_cond_response_prop = emm_case(emmeans(bin, "cond", type = "response", weights = "proportional")),
  pairs_link = con_case(pairs(b_link)),
  pairs_odds_ratio = con_case(pairs(b_resp)),
  pairs_odds_ratio_holm = con_case(pairs(b_resp), adjust = "holm"),
  pairs_regrid = con_case(pairs(regrid(b_resp))),
  trt_vs_ctrl_response = con_case(contrast(b_c, "trt.vs.ctrl")),
  pairs_link_type_response = con_case(pairs(b_link), type = "response"),
  emm_cond_link = emm_case(emmeans(bin, "cond")),
  emm_response_test = tab_case(test(b_c)),
  emm_response_level90 = tab_case(confint(b_c, level = 0.9)),
  pairs_response_both = tab_case(summary(pairs(b_c), infer = c(TRUE, TRUE)))
)
out$bin <- B

# ---- pois: Poisson glmer (log link: rates and ratios) -------------------------------------
pois <- glmer(errors ~ cond + freq + (1 | subj), d, family = poisson)
Q <- fit_info(pois)
Q$formula <- "errors ~ cond + freq + (1 | subj)"
p_resp <- emmeans(pois, "cond", type = "response")
Q$cases <- list(
  emm_response = emm_case(p_resp),
  pairs_ratio = con_case(pairs(p_resp)),
  pairs_regrid = con_case(pairs(regrid(p_resp)))
)
out$pois <- Q

out[["_meta"]] <- list(R = R.version.string, lme4 = format(packageVersion("lme4")),
                       lmerTest = format(packageVersion("lmerTest")),
                       pbkrtest = format(packageVersion("pbkrtest")),
                       emmeans = format(packageVersion("emmeans")), seed = 20240611L,
                       nrow = nrow(d))
write_json(out, "tests/reference/emmeans_reference.json", digits = NA,
           auto_unbox = TRUE, pretty = FALSE, na = "null")
cat("wrote tests/reference/emmeans_reference.json:", nrow(d), "rows\n")
for (nm in c("psych", "cov", "bin", "pois")) {
  cat("\n====", nm, "\n")
  cat(out[[nm]]$cases[[1]]$text, "\n")
}
cat(out$psych$cases$pairs_tukey$text, "\n")
cat(out$bin$cases$pairs_odds_ratio$text, "\n")
cat(out$bin$cases$emm_response$text, "\n")
