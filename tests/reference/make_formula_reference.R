# Reference for sparsemixed/formula (names.py, design.py, bars.py): lme4 fits of formulas as
# R users write them, and predict() on new data.
#
#   transforms   scale(x), scale(x, scale = FALSE) (sparsemixed's center(x) too), poly(x, 2),
#                log(x + 1), I(x^2), in the fixed part and in random terms; predict(newdata)
#                replays the training means, sds and polynomial bases (lme4's predvars)
#   NA rows      scale()/poly() learn from every row of the data, before na.omit (R's model
#                frame), not from the rows the model keeps
#   offsets      offset(log(t)) in the formula, alone and added to the offset= argument
#   names        a column named like a function (CO2's and PBG's Treatment; columns named
#                log, exp, C, I, Q, center, scale, poly), dotted names (mlmRev's bdf:
#                IQ.verb), non-syntactic names in backticks (`my col`, also as a grouping
#                factor), text levels "K", "1", "2", "3" (a character column: a factor)
#
# Every case stores its data (so the Python test needs no R), the R formula and the
# sparsemixed spellings to check, lme4's fixed effects (names and values), criterion
# (REML criterion or deviance), theta, sigma, and predictions on new data.
#
# Run from the repository root:
#   Rscript tests/reference/make_formula_reference.R
# (needs lme4, nlme, mlmRev, jsonlite).  Writes tests/reference/lme4_formula.json.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

root <- "."
ss <- read.csv(file.path(root, "sparsemixed/datasets/data/sleepstudy.csv"))
ss$Subject <- factor(ss$Subject)

# data as JSON: columns as vectors (NA as null), factors as their labels plus their levels
df_json <- function(df) {
  factors <- list()
  cols <- list()
  for (v in names(df)) {
    x <- df[[v]]
    if (is.factor(x)) {
      factors[[v]] <- I(levels(x))
      x <- as.character(x)
    }
    cols[[v]] <- I(x)
  }
  list(columns = cols, factors = factors, names = I(names(df)))
}

# data: a data frame, or the name of a data set bundled with sparsemixed (read as it is)
case <- function(fit, data, r_formula, py, newdata = NULL, allow_new = FALSE, extra = list(), fitted = FALSE) {
  out <- list(
    data = if (is.character(data)) data else df_json(data), r_formula = r_formula, py_formulas = I(py),
    reml = isREML(fit), fixef_names = I(names(fixef(fit))), fixef = I(unname(fixef(fit))),
    criterion = if (isREML(fit)) unname(getME(fit, "devcomp")$cmp[["REML"]]) else deviance(fit),
    theta = I(unname(getME(fit, "theta"))), sigma = sigma(fit)
  )
  if (fitted) out$fitted <- I(unname(fitted(fit)))
  if (!is.null(newdata)) {
    out$newdata <- df_json(newdata)
    out$pred <- I(unname(predict(fit, newdata, allow.new.levels = allow_new)))
    out$pred_re_na <- I(unname(predict(fit, newdata, re.form = NA)))
  }
  c(out, extra)
}

# the better of two optimizers: lme4's default (nloptwrap) stops early on bdf (max|grad| 0.31,
# 0.023 above the optimum), bobyqa to a tight tolerance stops at a worse boundary point on PBG;
# singular-fit messages are not printed
ctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
crit <- function(fit) if (isREML(fit)) getME(fit, "devcomp")$cmp[["REML"]] else deviance(fit)
best <- function(f1, f2) if (crit(f2) < crit(f1)) f2 else f1
quiet_lmer <- function(...) suppressWarnings(suppressMessages(best(lmer(...), lmer(..., control = ctl))))
out <- list()

nd_sleep <- data.frame(Days = c(0, 2.5, 9, 12, 4, 7.25, 20),
                       Subject = factor(c("308", "309", "330", "372", "308", "352", "350"),
                                        levels = levels(ss$Subject)))

# -- scale(), in both parts ------------------------------------------------------------------
f <- quiet_lmer(Reaction ~ scale(Days) + (1 + scale(Days) | Subject), ss)
out$scale <- case(f, "sleepstudy", "Reaction ~ scale(Days) + (1 + scale(Days) | Subject)",
                  c("Reaction ~ scale(Days) + (1 + scale(Days) | Subject)"), nd_sleep,
                  extra = list(center = mean(ss$Days), scale = sd(ss$Days)))

# -- centring: R's scale(x, scale = FALSE); sparsemixed's center(x) is the same column -------
f <- quiet_lmer(Reaction ~ scale(Days, scale = FALSE) + (scale(Days, scale = FALSE) | Subject), ss)
out$center <- case(f, "sleepstudy", "Reaction ~ scale(Days, scale = FALSE) + (scale(Days, scale = FALSE) | Subject)",
                   c("Reaction ~ scale(Days, scale = FALSE) + (scale(Days, scale = FALSE) | Subject)",
                     "Reaction ~ center(Days) + (center(Days) | Subject)"), nd_sleep)

# -- poly(): orthogonal polynomials, fixed part and a random term -----------------------------
f <- quiet_lmer(Reaction ~ poly(Days, 2) + (1 | Subject), ss)
out$poly <- case(f, "sleepstudy", "Reaction ~ poly(Days, 2) + (1 | Subject)", c("Reaction ~ poly(Days, 2) + (1 | Subject)"),
                 nd_sleep, extra = list(basis = I(unname(poly(ss$Days, 2)[1:10, ]))))
f <- quiet_lmer(Reaction ~ poly(Days, 2) + (poly(Days, 1) | Subject), ss, REML = FALSE)
out$poly_random <- case(f, "sleepstudy", "Reaction ~ poly(Days, 2) + (poly(Days, 1) | Subject)",
                        c("Reaction ~ poly(Days, 2) + (poly(Days, 1) | Subject)"), nd_sleep)

# -- log() and I(x^2), in both parts, ML --------------------------------------------------------
f <- quiet_lmer(Reaction ~ log(Days + 1) + I(Days^2) + (1 + log(Days + 1) | Subject), ss, REML = FALSE)
out$log_I <- case(f, "sleepstudy", "Reaction ~ log(Days + 1) + I(Days^2) + (1 + log(Days + 1) | Subject)",
                  c("Reaction ~ log(Days + 1) + I(Days^2) + (1 + log(Days + 1) | Subject)"), nd_sleep)

# -- missing values: scale() and poly() learn from every row (before na.omit) --------------------
sn <- ss
sn$Reaction[sn$Days >= 8] <- NA
sn$Reaction[c(1, 2, 3)] <- NA
sn$Days[c(50, 120)] <- NA
f <- quiet_lmer(Reaction ~ scale(Days) + (scale(Days) | Subject), sn, REML = FALSE)
out$scale_na <- case(f, sn, "Reaction ~ scale(Days) + (scale(Days) | Subject)",
                     c("Reaction ~ scale(Days) + (scale(Days) | Subject)"), nd_sleep)
sp <- sn
sp$Days <- ss$Days           # poly() refuses missing values in its own variable
f <- quiet_lmer(Reaction ~ poly(Days, 2) + (1 | Subject), sp, REML = FALSE)
out$poly_na <- case(f, sp, "Reaction ~ poly(Days, 2) + (1 | Subject)", c("Reaction ~ poly(Days, 2) + (1 | Subject)"),
                    nd_sleep)

# -- offsets: offset(log(t)) alone, and added to offset= ------------------------------------------
so <- ss
so$t <- 1 + as.integer(so$Subject) %% 4 + so$Days / 10
so$o <- 0.5 * so$Days - 2
nd_off <- cbind(nd_sleep, t = c(1, 2, 3.5, 4, 1.5, 2.5, 3), o = c(0, 1, -1, 2, 0.5, 3, 1))
f <- quiet_lmer(Reaction ~ Days + offset(log(t)) + (Days | Subject), so)
out$offset <- case(f, so, "Reaction ~ Days + offset(log(t)) + (Days | Subject)",
                   c("Reaction ~ Days + offset(log(t)) + (Days | Subject)"), nd_off, fitted = TRUE)
f <- suppressMessages(best(lmer(Reaction ~ Days + offset(log(t)) + (Days | Subject), so, offset = o),
                           lmer(Reaction ~ Days + offset(log(t)) + (Days | Subject), so, offset = o, control = ctl)))
# lme4's predict(newdata) leaves the offset= argument out; sparsemixed adds the column it was
# given by name (offset = "o"): pred_plus_o is lme4's prediction plus newdata$o
out$offset_both <- case(f, so, "Reaction ~ Days + offset(log(t)) + (Days | Subject), offset = o",
                        c("Reaction ~ Days + offset(log(t)) + (Days | Subject)"), nd_off,
                        extra = list(offset_arg = "o"), fitted = TRUE)
out$offset_both$pred_plus_o <- I(out$offset_both$pred + nd_off$o)

# -- a column named Treatment: R's CO2 ------------------------------------------------------------
co2 <- as.data.frame(CO2)
co2$Plant <- factor(as.character(co2$Plant), levels = levels(co2$Plant))
nd_co2 <- co2[c(1, 9, 30, 44, 60, 84), c("Plant", "Type", "Treatment", "conc")]
nd_co2$conc <- c(100, 300, 800, 95, 1000, 500)
f <- quiet_lmer(uptake ~ Treatment * Type + log(conc) + (1 | Plant), co2)
out$co2 <- case(f, co2, "uptake ~ Treatment * Type + log(conc) + (1 | Plant)",
                c("uptake ~ Treatment * Type + log(conc) + (1 | Plant)"), nd_co2)

# -- Treatment again: nlme's PBG, a random slope on log(dose) -------------------------------------
pbg <- as.data.frame(nlme::PBG)
pbg$Rabbit <- factor(as.character(pbg$Rabbit), levels = levels(pbg$Rabbit))
pbg$Run <- NULL
nd_pbg <- pbg[c(1, 7, 20, 33, 60), c("dose", "Treatment", "Rabbit")]
nd_pbg$dose <- c(10, 20, 40, 80, 150)
f <- quiet_lmer(deltaBP ~ log(dose) * Treatment + (log(dose) | Rabbit), pbg)
out$pbg <- case(f, pbg, "deltaBP ~ log(dose) * Treatment + (log(dose) | Rabbit)",
                c("deltaBP ~ log(dose) * Treatment + (log(dose) | Rabbit)"), nd_pbg)

# -- dotted names: mlmRev's bdf (the first 40 schools) ---------------------------------------------
data("bdf", package = "mlmRev")
b <- bdf[bdf$schoolNR %in% levels(bdf$schoolNR)[1:40], c("schoolNR", "IQ.verb", "IQ.perf", "sex", "ses", "langPOST")]
b$schoolNR <- droplevels(b$schoolNR)
rownames(b) <- NULL
nd_b <- b[c(1, 50, 300, 600), c("schoolNR", "IQ.verb", "IQ.perf", "sex", "ses")]
nd_b$IQ.verb <- c(8, 12, 15, 10.5)
f <- quiet_lmer(langPOST ~ IQ.verb + IQ.perf + scale(ses) + sex + (1 + IQ.verb | schoolNR), b)
out$bdf <- case(f, b, "langPOST ~ IQ.verb + IQ.perf + scale(ses) + sex + (1 + IQ.verb | schoolNR)",
                c("langPOST ~ IQ.verb + IQ.perf + scale(ses) + sex + (1 + IQ.verb | schoolNR)",
                  "langPOST ~ `IQ.verb` + Q('IQ.perf') + scale(ses) + sex + (1 + `IQ.verb` | schoolNR)"), nd_b)

# -- columns named like functions -------------------------------------------------------------------
set.seed(20240901)
n <- 240
bi <- data.frame(poly = factor(rep(sprintf("g%02d", 1:24), each = 10)), x = runif(n, 0.5, 3))
bi$log <- rnorm(n)
bi$exp <- rnorm(n)
bi$C <- factor(sample(c("lo", "mid", "hi"), n, replace = TRUE), levels = c("hi", "lo", "mid"))
bi$I <- rnorm(n)
bi$Q <- rnorm(n)
bi$center <- rnorm(n)
bi$scale <- rnorm(n, 2)
u <- matrix(rnorm(48), 24, 2) %*% diag(c(1, 0.5))
g <- as.integer(bi$poly)
bi$y <- 1 + 0.5 * bi$log - 0.3 * bi$exp + 0.8 * log(bi$x) + c(hi = 0, lo = 1, mid = -1)[as.character(bi$C)] +
  0.2 * bi$I + 0.1 * bi$x^2 - 0.4 * bi$Q + 0.3 * bi$center + u[g, 1] + u[g, 2] * bi$scale + rnorm(n)
nd_bi <- bi[c(1, 50, 100, 239), setdiff(names(bi), "y")]
f <- quiet_lmer(y ~ log + log(x) + exp + C + I + I(x^2) + Q + center + (1 + scale | poly), bi)
out$builtins <- case(f, bi, "y ~ log + log(x) + exp + C + I + I(x^2) + Q + center + (1 + scale | poly)",
                     c("y ~ log + log(x) + exp + C + I + I(x^2) + Q + center + (1 + scale | poly)"), nd_bi)

# -- non-syntactic names in backticks, also as the grouping factor -------------------------------------
set.seed(7)
od <- data.frame(check.names = FALSE, `my grp` = factor(rep(sprintf("s%d", 1:15), times = 8)),
                 `my col` = rnorm(120), `a-b` = runif(120))
od$y <- 2 + 1.5 * od$`my col` - od$`a-b` + rnorm(15)[as.integer(od$`my grp`)] + rnorm(120, sd = 0.7)
nd_od <- od[c(1, 2, 3, 40), c("my grp", "my col", "a-b")]
f <- quiet_lmer(y ~ `my col` + `a-b` + (1 + `my col` | `my grp`), od)
out$odd_names <- case(f, od, "y ~ `my col` + `a-b` + (1 + `my col` | `my grp`)",
                      c("y ~ `my col` + `a-b` + (1 + `my col` | `my grp`)",
                        "y ~ Q(\"my col\") + Q(\"a-b\") + (1 + Q(\"my col\") | Q(\"my grp\"))"), nd_od)

# -- school grades "K", "1", "2", "3": a character column is a factor (unbalanced) ------------------
set.seed(11)
gr <- data.frame(school = rep(sprintf("sch%02d", 1:20), times = c(rep(6, 10), rep(14, 10))))
gr$grade <- sample(c("K", "1", "2", "3"), nrow(gr), replace = TRUE, prob = c(0.2, 0.3, 0.3, 0.2))
gr$y <- 10 + c(K = 0, `1` = 2, `2` = 3.5, `3` = 5)[gr$grade] + rnorm(20)[as.integer(factor(gr$school))] +
  rnorm(nrow(gr))
nd_gr <- data.frame(school = c("sch01", "sch15", "sch20"), grade = c("K", "3", "1"))
f <- quiet_lmer(y ~ grade + (1 | school), gr)
out$grades <- case(f, gr, "y ~ grade + (1 | school)", c("y ~ grade + (1 | school)"), nd_gr)

out[["_meta"]] <- list(R = R.version.string, lme4 = format(packageVersion("lme4")),
                       mlmRev = format(packageVersion("mlmRev")), nlme = format(packageVersion("nlme")))
write_json(out, file.path(root, "tests/reference/lme4_formula.json"), digits = NA,
           auto_unbox = TRUE, na = "null")
cat("wrote tests/reference/lme4_formula.json\n")
