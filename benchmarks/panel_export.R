# Export the data sets of the small-model panel (benchmarks/panel.tsv) to CSV.
#   Rscript benchmarks/panel_export.R [benchmarks/panel.tsv] [benchmarks/.cache/panel]
# For each data set named in the panel's `dataset` column (package::name) it writes
#   <out>/<package>_<name>.csv       the columns used by any of the panel's formulas on it
#   <out>/<package>_<name>.factors   the columns to read as factors (one a line): those that
#                                    are factors (or ordered) in R, and every grouping variable
# Missing values are written as NA; each fit drops its own incomplete rows (lme4 and
# sparsemixed both omit them by default). Needs the Debian packages r-cran-lme4,
# r-cran-nlme, r-cran-mlmrev, r-cran-mass (or install.packages of the same names).
args <- commandArgs(trailingOnly = TRUE)
panel_path <- if (length(args) >= 1) args[1] else "benchmarks/panel.tsv"
out <- if (length(args) >= 2) args[2] else "benchmarks/.cache/panel"

panel <- read.delim(panel_path, stringsAsFactors = FALSE, quote = "")
pkgs <- unique(sub("::.*", "", panel$dataset))
deb <- c(lme4 = "r-cran-lme4", nlme = "r-cran-nlme", mlmRev = "r-cran-mlmrev", MASS = "r-cran-mass")
missing <- pkgs[!vapply(pkgs, requireNamespace, logical(1), quietly = TRUE)]
if (length(missing)) {
  cat("missing R packages:", paste(missing, collapse = ", "), "\n  install with: apt-get install",
      paste(deb[missing][!is.na(deb[missing])], collapse = " "), "\n", file = stderr())
  quit(status = 2)
}
suppressPackageStartupMessages(library(lme4))       # for findbars()
dir.create(out, recursive = TRUE, showWarnings = FALSE)

for (ds in unique(panel$dataset)) {
  pkg <- sub("::.*", "", ds); name <- sub(".*::", "", ds)
  e <- new.env()
  utils::data(list = name, package = pkg, envir = e)
  d <- as.data.frame(get(name, envir = e))
  forms <- lapply(panel$formula[panel$dataset == ds], as.formula)
  cols <- unique(unlist(lapply(forms, all.vars)))
  groups <- unique(unlist(lapply(forms, function(f)
    unlist(lapply(findbars(f), function(b) all.vars(b[[3]]))))))
  absent <- setdiff(cols, names(d))
  if (length(absent)) stop(ds, " has no column(s) ", paste(absent, collapse = ", "))
  d <- d[, cols, drop = FALSE]
  factors <- union(cols[vapply(d, is.factor, logical(1))], groups)
  for (v in factors) d[[v]] <- as.character(d[[v]])
  stem <- file.path(out, paste0(pkg, "_", name))
  write.csv(d, paste0(stem, ".csv"), row.names = FALSE)
  writeLines(factors, paste0(stem, ".factors"))
  cat(sprintf("%-22s %6d rows  %s\n", ds, nrow(d), paste(cols, collapse = " ")))
}
