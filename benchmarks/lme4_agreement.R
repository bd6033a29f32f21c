# lme4's fits for benchmarks/lme4_agreement.py: reads <dir>/cases.json, writes <dir>/lme4.json.
#   Rscript benchmarks/lme4_agreement.R <dir>
suppressMessages({library(lme4); library(jsonlite)})
dir <- commandArgs(trailingOnly = TRUE)[1]
cases <- fromJSON(file.path(dir, "cases.json"), simplifyDataFrame = FALSE)
out <- list()
for (cs in cases) {
  d <- read.csv(cs$file, stringsAsFactors = TRUE)
  t0 <- proc.time()[["elapsed"]]
  m <- tryCatch(suppressWarnings(suppressMessages(lmer(as.formula(cs$formula), d, REML = cs$REML))),
                error = function(e) conditionMessage(e))
  secs <- proc.time()[["elapsed"]] - t0
  out[[cs$id]] <- if (is.character(m)) list(error = m) else
    list(objective = unname(if (cs$REML) REMLcrit(m) else deviance(m)), theta = unname(getME(m, "theta")),
         seconds = secs)
}
write(toJSON(out, digits = NA, auto_unbox = TRUE), file.path(dir, "lme4.json"))
