# lme4's order of random-effects terms (and so of theta) on formula shapes sparsemixed supports.
#   Rscript tests/reference/term_order/make_term_order.R   (from the repository root; lme4 1.1-31)
# Writes tests/reference/term_order/{data.csv, term_order.json}; tests/test_term_order.py reads both.
#
# lme4's rule (findbars + expandDoubleVerts + expandSlash, then mkReTrms):
#   (e1 + e2 || g)  -> (1 | g) + (0 + e1 | g) + (0 + e2 | g), in the order of R's terms() labels;
#   (e | a/b/c)     -> (e | c:(b:a)) + (e | b:a) + (e | a), the most deeply nested first;
#   (x || a/b)      -> the || first, then each term's slash: b:a, a (1), b:a, a (x);
#   then, if any(diff(nl) > 0) for the numbers of levels nl, the terms are put in the order
#   rev(order(nl)): decreasing nl, ties in REVERSE order of appearance; else unchanged.
suppressMessages({library(lme4); library(jsonlite)})
out_dir <- "tests/reference/term_order"

# -- an unbalanced data set: unequal group sizes, missing (a, b) and (a, c) cells ----------
set.seed(20240531)
na <- 14; nd <- 14; nc <- 20
a_size <- sample(8:60, na, replace = TRUE)
a <- rep(sprintf("a%02d", seq_len(na)), a_size)
n <- length(a)
# b: labels b1..b4 repeated within every a (b is nested in a by a/b); some a have fewer b's
nb_a <- sample(2:4, na, replace = TRUE)
b <- unlist(lapply(seq_len(na), function(i) paste0("b", sample(seq_len(nb_a[i]), a_size[i], replace = TRUE))))
e <- paste0("e", sample(1:2, n, replace = TRUE))                  # nested in b:a by a/b/e
c <- sprintf("c%02d", sample(seq_len(nc), n, replace = TRUE, prob = (1:nc) / sum(1:nc)))
d <- sprintf("d%02d", sample(seq_len(nd), n, replace = TRUE))      # as many levels as a
f <- sample(c("lo", "mid", "hi"), n, replace = TRUE, prob = c(.5, .3, .2))
x <- round(rnorm(n), 4)
z <- round(runif(n, -1, 1), 4)
ia <- as.integer(factor(a)); iab <- as.integer(factor(paste(a, b))); ic <- as.integer(factor(c))
id <- as.integer(factor(d)); iabe <- as.integer(factor(paste(a, b, e))); iac <- as.integer(factor(paste(a, c)))
fi <- as.integer(factor(f, levels = c("lo", "mid", "hi")))
y <- 1 + 0.5 * x - 0.3 * z + (fi - 2) * 0.4 +
  rnorm(na, sd = 1.5)[ia] + rnorm(max(iab), sd = 0.8)[iab] + rnorm(max(iabe), sd = 0.4)[iabe] +
  rnorm(na, sd = 0.35)[ia] * x + rnorm(nc, sd = 1.0)[ic] + rnorm(nc, sd = 0.5)[ic] * z +
  rnorm(nd, sd = 0.6)[id] + rnorm(max(iac), sd = 0.3)[iac] +
  matrix(rnorm(3 * na, sd = 0.5), na)[cbind(ia, fi)] + rnorm(n, sd = 1)
dat <- data.frame(y = round(y, 6), x, z, f, a, b, e, c, d)
write.csv(dat, file.path(out_dir, "data.csv"), row.names = FALSE)
dat <- read.csv(file.path(out_dir, "data.csv"), stringsAsFactors = TRUE)

formulas <- c(
  scalar          = "y ~ x + (1 | a)",
  vector          = "y ~ x + (1 + x | a)",
  double_vert     = "y ~ x + (x || a)",
  double_vert_2   = "y ~ x + (1 + x + z || c)",
  double_vert_0   = "y ~ x + (0 + x + z || a) + (1 | c)",
  nested          = "y ~ x + (1 | a/b)",
  nested_3        = "y ~ x + (1 | a/b/e)",
  nested_slope    = "y ~ x + (1 | a/b) + (0 + x | a)",
  slope_nested    = "y ~ x + (0 + x | a) + (1 | a/b)",
  nested_vector   = "y ~ x + (1 + x | a/b)",
  nested_dv       = "y ~ x + (1 + x || a/b)",
  nested_dv_c     = "y ~ x + (1 + x || a/b) + (1 | c)",
  colon           = "y ~ x + (1 | a) + (1 | a:b)",
  colon_rev       = "y ~ x + (1 | b:a) + (1 | a)",
  crossed         = "y ~ x + (1 | a) + (1 | c)",
  crossed_rev     = "y ~ x + (1 | c) + (1 | a)",
  ties_kept       = "y ~ x + (1 | a) + (1 | d)",
  ties_reversed   = "y ~ x + (1 | a) + (1 | d) + (1 | c)",
  same_factor     = "y ~ x + (1 | a) + (1 | c) + (0 + x | a)",
  same_factor_2   = "y ~ x + (0 + x | a) + (1 | a) + (0 + z | a)",
  minus_one       = "y ~ x + (x - 1 | a) + (1 | c)",
  factor_slope    = "y ~ x + (0 + f | a) + (1 | c)",
  factor_dv       = "y ~ x + (f || a)",
  dv_interaction  = "y ~ x * z + (x * z || c)",
  dv_degree       = "y ~ x + (x:z + z || a) + (1 | c)",
  interaction     = "y ~ x + (1 | a) + (1 | c) + (1 | a:c)",
  interaction_rev = "y ~ x + (1 | a:c) + (1 | d) + (1 | a)",
  mixed           = "y ~ x + z + (1 + z | c) + (x || a) + (1 | a/b)"
)

out <- list()
for (nm in names(formulas)) {
  fm <- as.formula(formulas[[nm]])
  fit <- suppressMessages(suppressWarnings(
    lmer(fm, data = dat, REML = TRUE,
         control = lmerControl(optCtrl = list(ftol_abs = 1e-12, xtol_abs = 1e-10)))))
  th <- getME(fit, "theta")
  cnms <- getME(fit, "cnms")
  vc <- as.data.frame(VarCorr(fit))
  out[[nm]] <- list(                                     # I(): vectors stay JSON arrays
    formula = formulas[[nm]],
    bars = I(vapply(findbars(fm), deparse1, "")),        # findbars' expansion, before sorting
    nl = I(as.integer(diff(getME(fit, "Gp")) / lengths(cnms))),  # levels per term, lme4's order
    groups = I(names(cnms)),                             # grouping factor per term (lme4's order)
    columns = lapply(unname(cnms), I),
    term_names = I(make.unique(names(cnms))),            # the terms' names, R's make.unique
    varcorr_grp = I(unique(vc$grp[vc$grp != "Residual"])),  # VarCorr's (make.names if duplicated)
    theta_names = I(names(th)), theta = I(unname(th)),
    reml_criterion = REMLcrit(fit),
    singular = isSingular(fit))
  cat(sprintf("%-16s %-55s %s\n", nm, formulas[[nm]], paste(names(th), collapse = "  ")))
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(out_dir, "term_order.json"))
