# R's GLM family functions on fixed grids, for tests/test_families.py.
#   Rscript tests/reference/make_family_reference.R   (from the repository root)
# writes tests/reference/family_reference.json.
#
# Numbers are written with sprintf("%.17g") (inserted verbatim into the JSON) so that every double
# -- inputs included -- round-trips exactly: jsonlite's digits = NA prints only 15 significant
# digits, and a 1e-15 change of an input such as eta = 700 moves exp(eta) by 7e-13 relative.
# Non-finite values are the strings "Inf", "-Inf", "NaN", "NA".
#
# Cases: (binomial, logit), (binomial, probit), (binomial, cloglog), (poisson, log). The link
# functions are evaluated per case on the shared grids (grids$eta, grids$mu_*); variance,
# dev.resids, aic and initialize do not depend on the link and are evaluated once per family (the
# script checks they agree across the binomial links). An aic group given by "rows" (0-based) takes
# y, mu, wt from the family's dev arrays, with n = wt for binomial and n = 1 for poisson.
suppressMessages(library(jsonlite))

num <- function(x) {
  x <- as.numeric(x)
  s <- ifelse(is.finite(x), sprintf("%.17g", x), paste0('"', as.character(x), '"'))
  structure(paste0("[", paste(s, collapse = ","), "]"), class = "json")
}
eps <- .Machine$double.eps
set.seed(20261205)

# ---------------------------------------------------------------------------- link grids
ext <- c(800, 745, 710, 709, 700, 650, 100, 50, 40, 38.6, 37, 35, 31, 30.000001, 30, 29.999999,
         20, 10, 8.2, -qnorm(eps), 8.1258, 8.12, 8, 7, 6, 5.000001, 5, 4.999999, 3, 1, 0.5,
         1e-3, 1e-8, 1e-300)
eta <- sort(unique(c(-Inf, Inf, 0, ext, -ext, seq(-40, 40, by = 0.1), seq(-700, 700, by = 20),
                     runif(100, -40, 40), runif(50, -5, 5), runif(20, -750, 750))))

mu_binom <- sort(unique(c(0, 5e-324, 1e-300, 1e-100, 1e-20, eps / 2, eps, 1e-15, 1e-12, 1e-10,
                          1e-8, 1e-5, 1e-3, 0.01, seq(0.02, 0.98, by = 0.02), 0.99, 0.999,
                          1 - 1e-5, 1 - 1e-8, 1 - 1e-10, 1 - 1e-12, 1 - 1e-15, 1 - eps,
                          1 - eps / 2, 1, runif(100))))
mu_pois <- sort(unique(c(0, 5e-324, 1e-300, eps, 1e-10, 1e-3, 0.1, 0.5, 1, 2, 10, 100, 1e3, 1e6,
                         1e10, 1e100, 1e300, Inf, exp(runif(50, -30, 30)))))

# eta is shared by all links (grids$eta); mu is grids$mu_binomial or grids$mu_poisson
link_part <- function(f, mu) {
  list(linkinv = num(f$linkinv(eta)), mu_eta = num(f$mu.eta(eta)), linkfun = num(f$linkfun(mu)),
       valideta = f$valideta(eta[is.finite(eta)]))
}

# -------------------------------------------------------------------------- binomial grids
mu_dev <- c(eps, 1e-10, 1e-4, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1 - 1e-4, 1 - 1e-10, 1 - eps)
by <- list(); bn <- list(); bmu <- list()
for (n in 1:20) for (k in 0:n) {
  mus <- c(mu_dev, runif(1))
  if (k > 0 && k < n) mus <- c(mus, k / n, k / n * (1 + 1e-6))   # mu = y and close to y
  by[[length(by) + 1]] <- rep(k / n, length(mus))
  bn[[length(bn) + 1]] <- rep(n, length(mus))
  bmu[[length(bmu) + 1]] <- mus
}
b_y <- unlist(by); b_n <- unlist(bn); b_mu <- unlist(bmu)
# extra prior-weight patterns for dev.resids: 0 and non-integer weights on 0/1 and 1/2 responses
xy <- rep(c(0, 1, 0.5), each = 4); xw <- rep(c(0, 0.5, 2.5, 7), 3); xmu <- rep(c(0.3, 1e-12, 0.9, 1 - 1e-12), 3)
bd_y <- c(b_y, xy); bd_mu <- c(b_mu, xmu); bd_wt <- c(b_n, xw)

fb <- binomial()
aic_each <- function(f, y, n, mu, wt) sapply(seq_along(y), function(i) f$aic(y[i], n[i], mu[i], wt[i], 0))
# groups, each one call of family$aic (any(n > 1) is decided per call)
b_groups <- list()
add_group <- function(groups, f, label, y, n, mu, wt, rows = NULL) {
  g <- if (is.null(rows)) list(label = label, y = num(y), n = num(n), mu = num(mu), wt = num(wt))
       else list(label = label, rows = rows - 1L)
  g$aic <- f$aic(y, n, mu, wt, 0)
  g$aic_each <- num(aic_each(f, y, n, mu, wt))
  c(groups, list(g))
}
for (n in 1:20) {
  sel <- which(b_n == n)
  b_groups <- add_group(b_groups, fb, if (n == 1) "bernoulli" else paste0("trials_", n),
                        b_y[sel], b_n[sel], b_mu[sel], b_n[sel], rows = sel)
}
# prior weights with a 0/1 (or 0.5) response and n = 1: m = wt
py <- rep(c(0, 1, 0.5, 1, 0), 6); pw <- rep(c(0, 0.5, 1, 2, 3.7, 10), each = 5)
pmu <- runif(length(py), 0.05, 0.95)
b_groups <- add_group(b_groups, fb, "prior_weights", py, rep(1, length(py)), pmu, pw)
# cbind responses with prior weights: n trials, wt = weights * n
my <- c(0, 0.2, 1, 0.5, 0.3, 1, 0); mn <- c(1, 5, 3, 2, 10, 1, 4); mw <- mn * c(1, 2, 0.5, 3, 1, 0, 2)
b_groups <- add_group(b_groups, fb, "trials_and_weights", my, mn, runif(7, 0.05, 0.95), mw)

init_binom <- function(y, w) {
  e <- new.env(); e$y <- y; e$weights <- w; e$nobs <- length(y)
  suppressWarnings(eval(fb$initialize, e)); e$mustart
}
ms_y <- c(unlist(lapply(1:20, function(n) (0:n) / n)), xy)
ms_w <- c(unlist(lapply(1:20, function(n) rep(n, n + 1))), xw)

binom_family <- list(
  variance = num(fb$variance(mu_binom)),
  dev = list(y = num(bd_y), mu = num(bd_mu), wt = num(bd_wt), dev_resids = num(fb$dev.resids(bd_y, bd_mu, bd_wt))),
  aic = b_groups,
  mustart = list(y = num(ms_y), wt = num(ms_w), mustart = num(init_binom(ms_y, ms_w))),
  validmu = list(list(mu = num(0.5), valid = fb$validmu(0.5)),
                 list(mu = num(c(1e-300, 0.5, 1 - eps)), valid = fb$validmu(c(1e-300, 0.5, 1 - eps))),
                 list(mu = num(c(0, 0.5)), valid = fb$validmu(c(0, 0.5))),
                 list(mu = num(c(0.5, 1)), valid = fb$validmu(c(0.5, 1))),
                 list(mu = num(c(0.5, NaN)), valid = fb$validmu(c(0.5, NaN))),
                 list(mu = num(c(0.5, Inf)), valid = fb$validmu(c(0.5, Inf)))))
for (l in c("probit", "cloglog")) {
  f <- binomial(link = l)
  stopifnot(identical(f$variance(mu_binom), fb$variance(mu_binom)),
            identical(f$dev.resids(bd_y, bd_mu, bd_wt), fb$dev.resids(bd_y, bd_mu, bd_wt)),
            identical(f$aic(b_y, b_n, b_mu, b_n, 0), fb$aic(b_y, b_n, b_mu, b_n, 0)))
}

# --------------------------------------------------------------------------- poisson grids
fp <- poisson()
mu_pd <- c(1e-300, eps, 1e-10, 1e-3, 0.1, 0.5, 1, 2.5, 10, 25, 49.5, 50, 100, 1000, 1e6, 1e10)
py <- c(); pmu <- c(); pwt <- c()
for (y in 0:50) {
  mus <- c(mu_pd, exp(runif(3, -5, 8)))
  if (y > 0) mus <- c(mus, y, y * (1 + 1e-6))
  py <- c(py, rep(y, length(mus))); pmu <- c(pmu, mus)
}
pwt <- rep(c(1, 2.5, 1, 0.5), length.out = length(py))
p_groups <- list()
for (lo in c(0, 10, 20, 30, 40)) {
  sel <- which(py >= lo & py < lo + 10 + (lo == 40))
  p_groups <- add_group(p_groups, fp, paste0("counts_", lo), py[sel], rep(1, length(sel)), pmu[sel], pwt[sel],
                        rows = sel)
}
init_pois <- function(y) {
  e <- new.env(); e$y <- y; e$weights <- rep(1, length(y)); e$nobs <- length(y)
  eval(fp$initialize, e); e$mustart
}
pois_family <- list(
  variance = num(fp$variance(mu_pois)),
  dev = list(y = num(py), mu = num(pmu), wt = num(pwt), dev_resids = num(fp$dev.resids(py, pmu, pwt))),
  aic = p_groups,
  mustart = list(y = num(0:50), wt = num(rep(1, 51)), mustart = num(init_pois(0:50))),
  validmu = list(list(mu = num(1), valid = fp$validmu(1)),
                 list(mu = num(c(1e-300, 1e300)), valid = fp$validmu(c(1e-300, 1e300))),
                 list(mu = num(c(0, 1)), valid = fp$validmu(c(0, 1))),
                 list(mu = num(c(1, Inf)), valid = fp$validmu(c(1, Inf))),
                 list(mu = num(c(1, NaN)), valid = fp$validmu(c(1, NaN)))))

# ---------------------------------------------------------------------------------- output
out <- list(
  R_version = R.version.string,
  constants = list(double_eps = num(eps), probit_thresh = num(-qnorm(eps))),
  grids = list(eta = num(eta), mu_binomial = num(mu_binom), mu_poisson = num(mu_pois)),
  links = list(
    binomial_logit = link_part(binomial(link = "logit"), mu_binom),
    binomial_probit = link_part(binomial(link = "probit"), mu_binom),
    binomial_cloglog = link_part(binomial(link = "cloglog"), mu_binom),
    poisson_log = link_part(poisson(link = "log"), mu_pois)),
  families = list(binomial = binom_family, poisson = pois_family))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, json_verbatim = TRUE),
           "tests/reference/family_reference.json")
