"""Per-benchmark evaluation settings. `paper` reproduces the paper's evaluation script
(Qwen2.5-Math evaluation kit, `sh/eval_all_math.sh`): MATH500, Minerva Math and OlympiadBench greedy
with one sample; AIME24, AIME25 and AMC23 with 8 samples at temperature 0.6, top-p 1 (avg@8);
3,072 new tokens; the qwen25-math-cot template. The testbed's sets follow the testbed's protocol
(the template it was pre-trained with; 8 samples at T = 0.6, as its target band is defined).

Grading: `boxed` (the training reward: one grader for train and eval) by default. The paper's kit
falls back to the last number when there is no box; `--grading lenient` reproduces that.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class BenchmarkSettings:
    n_samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 3072
    template: str = "qwen25-math-cot"


_GREEDY = BenchmarkSettings()
_SAMPLED = BenchmarkSettings(n_samples=8, temperature=0.6)
_TESTBED = BenchmarkSettings(n_samples=8, temperature=0.6, max_new_tokens=400, template="testbed")

PROTOCOLS: dict[str, dict[str, BenchmarkSettings]] = {
    "paper": {
        "math500": _GREEDY, "minerva_math": _GREEDY, "olympiadbench": _GREEDY,
        "aime24": _SAMPLED, "aime25": _SAMPLED, "amc23": _SAMPLED,
        "math500_verl": _GREEDY,
        "testbed/*": _TESTBED,
    },
    "greedy": {"*": _GREEDY, "testbed/*": replace(_TESTBED, n_samples=1, temperature=0.0)},
}


def settings_for(protocol: str, benchmark: str) -> BenchmarkSettings:
    table = PROTOCOLS[protocol]
    if benchmark in table:
        return table[benchmark]
    # the most specific wildcard wins ("testbed/*" before "*")
    matches = [p for p in table if p.endswith("*") and benchmark.startswith(p[:-1])]
    return table[max(matches, key=len)] if matches else _GREEDY
