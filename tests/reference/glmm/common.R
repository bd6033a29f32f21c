# Shared by the reference scripts of this directory (sourced after they set script_dir, the
# directory they live in): lme4 and jsonlite, the model table and the data loader.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
models <- read.delim(file.path(script_dir, "models.tsv"), stringsAsFactors = FALSE,
                     comment.char = "#", quote = "")
rownames(models) <- models$name

load_data <- function(m) {
  d <- read.csv(file.path(script_dir, "data", paste0(m$data, ".csv")))
  for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]])
  for (v in strsplit(m$factors, ",")[[1]]) if (nzchar(v)) d[[v]] <- factor(d[[v]])
  d
}
