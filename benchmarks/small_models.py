"""Build plus fit of four small lme4 models (median of 7), for before/after comparisons:

    python benchmarks/small_models.py <checkout>     # e.g. a worktree of an older commit

No lme4 column: the small-model panel against lme4 is issue 18.
"""
import sys, time, warnings, statistics
sys.path.insert(0, sys.argv[1])
import sparsemixed as sm
out = []
for name, f in [("sleepstudy", "Reaction ~ Days + (Days|Subject)"), ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"),
                ("Dyestuff", "Yield ~ 1 + (1|Batch)"), ("Pastes", "strength ~ 1 + (1|batch/cask)")]:
    try:
        df = sm.datasets.load(name)
    except Exception as e:
        continue
    ts = []
    for _ in range(7):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter(); r = sm.lmer(f, df).fit(); ts.append(time.perf_counter() - t)
    out.append(f"{name}: {statistics.median(ts)*1e3:.1f} ms feval {r.optsummary.feval} obj {r.objective:.6f}")
print("\n".join(out))
