"""The synthetic math world: a seeded generator of word problems with gold answers and worked
solutions in several styles.

Six categories in the spirit of MATH's subjects, each with difficulty levels 1-5:
  arithmetic      multi-step addition and subtraction           (integers, can be negative)
  algebra         solve a*x + b = c                              (integers, can be negative)
  number_theory   remainders and greatest common divisors        (integers)
  counting        choose k of n, arrangements                    (integers)
  fractions       sums and differences of fractions              (reduced \\frac{p}{q} or integer)
  geometry        rectangle / triangle areas and perimeters      (integers)

Solutions come in styles (nothing in the problem says which one a document uses):
  careful   step-by-step working; each step may slip (an arithmetic error that then propagates)
  reflect   careful working, then a "Let me recheck" pass that usually catches a slip
  guess     a bare answer, right about a third of the time, otherwise off by a little
and end either in `\\boxed{answer}` or, for a share of documents, in an unboxed "The answer is N."
The pre-training corpus mixes them; RL on a single problem then has something general to learn
(prefer careful, reflective, boxed answers), as format correction and rising self-reflection do
for Qwen2.5-Math in the paper.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from fractions import Fraction

CATEGORIES = ["arithmetic", "algebra", "number_theory", "counting", "fractions", "geometry"]


@dataclass(frozen=True)
class WorldProblem:
    category: str
    level: int
    problem: str
    answer: str  # canonical LaTeX: an integer, a negative integer, or \frac{p}{q}
    steps: tuple[tuple[str, Fraction], ...]  # (text template with {} for the value, exact value)


def fmt(x: Fraction | int) -> str:
    """Canonical LaTeX of a rational: '12', '-3', '\\frac{3}{4}', '-\\frac{5}{2}'."""
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    sign = "-" if x < 0 else ""
    return f"{sign}\\frac{{{abs(x.numerator)}}}{{{x.denominator}}}"


def _plain(x: Fraction | int) -> str:
    """A value as it appears inside working: 12, -3, 3/4."""
    x = Fraction(x)
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _size(level: int) -> int:
    # operand ranges stay small: a character-level model of a few million parameters computes
    # reliably only on short numbers, and the world must leave the careful style usually right
    return [9, 12, 20, 30, 50][level - 1]


# --- problem makers: each returns (problem text, [(step text, value), ...], answer value) --------

def _arithmetic(rng: random.Random, level: int):
    n_terms = 1 + level // 2  # 1..3 terms after the first
    hi = _size(level)
    start = rng.randint(2, hi)
    ops = [(rng.choice("+-"), rng.randint(2, hi)) for _ in range(n_terms)]
    expr = str(start) + "".join(f" {op} {v}" for op, v in ops)
    name = rng.choice(["Ann", "Ben", "Cy", "Dee", "Eli", "Fay", "Gus", "Ivy"])
    item = rng.choice(["apples", "coins", "cards", "stamps", "marbles", "books"])
    text = f"{name} computes {expr}. What is the result?" if rng.random() < 0.5 else \
        f"{name} has {start} {item}, then " + ", then ".join(
            ("gets " if op == "+" else "loses ") + str(v) for op, v in ops) + f". How many {item} now?"
    if "has" in text and any(op == "-" for op, _ in ops):
        text = f"Compute {expr}."
    steps, acc = [], Fraction(start)
    for op, v in ops:
        prev = acc
        acc = acc + v if op == "+" else acc - v
        steps.append((f"{_plain(prev)} {op} {v} = {{}}", acc))
    return text, steps, acc


def _algebra(rng: random.Random, level: int):
    hi = _size(level)
    a = rng.randint(2, max(3, min(9, hi // 4)))
    x = rng.randint(-hi // 2 if level >= 3 else 1, hi // 2 + 2)
    b = rng.randint(-hi, hi)
    c = a * x + b
    bs = f"+ {b}" if b >= 0 else f"- {-b}"
    text = f"Solve for x: {a}x {bs} = {c}."
    steps = [(f"{a}x = {c} {'-' if b >= 0 else '+'} {abs(b)} = {{}}", Fraction(c - b)),
             (f"x = {c - b}/{a} = {{}}", Fraction(x))]
    return text, steps, Fraction(x)


def _number_theory(rng: random.Random, level: int):
    hi = _size(level)
    if rng.random() < 0.5:
        n = rng.randint(hi, hi * 4)
        m = rng.randint(3, min(9, max(4, hi // 3)))
        q, r = divmod(n, m)
        text = f"What is the remainder when {n} is divided by {m}?"
        steps = [(f"{m} * {q} = {{}}", Fraction(m * q)), (f"{n} - {m * q} = {{}}", Fraction(r))]
        return text, steps, Fraction(r)
    g = rng.randint(2, max(3, hi // 3))
    a, b = g * rng.randint(2, 9), g * rng.randint(2, 9)
    while a == b:
        b = g * rng.randint(2, 9)
    text = f"What is the greatest common divisor of {a} and {b}?"
    steps, x, y = [], max(a, b), min(a, b)
    while y:
        steps.append((f"{x} mod {y} = {{}}", Fraction(x % y)))
        x, y = y, x % y
    steps.append(("gcd = {}", Fraction(x)))
    return text, steps, Fraction(x)


def _counting(rng: random.Random, level: int):
    n = rng.randint(4, 5 + level)
    who = rng.choice(["students", "books", "flags", "toppings", "players", "songs", "colors", "cards"])
    kind = rng.random()
    if kind < 0.45:
        k = rng.randint(2, min(3, n - 1))
        val = math.comb(n, k)
        text = f"In how many ways can {k} {who} be chosen from {n} {who}?"
        num = math.prod(range(n - k + 1, n + 1))
        steps = [(f"{' * '.join(str(i) for i in range(n, n - k, -1))} = {{}}", Fraction(num)),
                 (f"{num} / {math.factorial(k)} = {{}}", Fraction(val))]
        return text, steps, Fraction(val)
    if kind < 0.75:
        k = rng.randint(2, min(3, n))
        val = math.perm(n, k)
        text = f"How many ways can {k} of {n} {who} be put in a row?"
        steps = [(f"{' * '.join(str(i) for i in range(n, n - k, -1))} = {{}}", Fraction(val))]
        return text, steps, Fraction(val)
    m = rng.randint(2, 3 + level)
    top = rng.randint(10, 10 * level + 20)
    val = top // m
    text = f"How many multiples of {m} are between 1 and {top}?"
    steps = [(f"{top} / {m} = {{}} (rounded down)", Fraction(val))]
    return text, steps, Fraction(val)


def _fractions(rng: random.Random, level: int):
    dmax = [4, 5, 6, 8, 10][level - 1]
    b, d = rng.randint(2, dmax), rng.randint(2, dmax)
    a, c = rng.randint(1, b * 2 - 1), rng.randint(1, d * 2 - 1)
    op = rng.choice("+-")
    x = Fraction(a, b) + Fraction(c, d) if op == "+" else Fraction(a, b) - Fraction(c, d)
    text = f"Compute {a}/{b} {op} {c}/{d}. Give the answer as a reduced fraction."
    lcm = b * d // math.gcd(b, d)
    n1, n2 = a * (lcm // b), c * (lcm // d)
    num = n1 + n2 if op == "+" else n1 - n2
    steps = [(f"{a}/{b} {op} {c}/{d} = {n1}/{lcm} {op} {n2}/{lcm}", None),
             (f"= {num}/{lcm} = {{}}", x)]
    return text, steps, x


def _geometry(rng: random.Random, level: int):
    hi = max(4, _size(level) // 2)
    w, h = rng.randint(2, hi), rng.randint(2, hi)
    kind = rng.random()
    if kind < 0.4:
        text = f"A rectangle is {w} cm by {h} cm. What is its area in square cm?"
        steps = [(f"{w} * {h} = {{}}", Fraction(w * h))]
        return text, steps, Fraction(w * h)
    if kind < 0.7:
        text = f"A rectangle is {w} cm by {h} cm. What is its perimeter in cm?"
        steps = [(f"{w} + {h} = {{}}", Fraction(w + h)), (f"2 * {w + h} = {{}}", Fraction(2 * (w + h)))]
        return text, steps, Fraction(2 * (w + h))
    w += w % 2  # an even base keeps the area an integer
    text = f"A triangle has base {w} and height {h}. What is its area?"
    steps = [(f"{w} * {h} = {{}}", Fraction(w * h)), (f"{w * h} / 2 = {{}}", Fraction(w * h, 2))]
    return text, steps, Fraction(w * h, 2)


_MAKERS = {"arithmetic": _arithmetic, "algebra": _algebra, "number_theory": _number_theory,
           "counting": _counting, "fractions": _fractions, "geometry": _geometry}


def make_problem(rng: random.Random, category: str | None = None, level: int | None = None) -> WorldProblem:
    category = category or rng.choice(CATEGORIES)
    level = level or rng.randint(1, 5)
    text, steps, ans = _MAKERS[category](rng, level)
    return WorldProblem(category, level, text, fmt(ans), tuple(steps))


# --- solutions ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StyleMix:
    """Shares of solution styles in the pre-training corpus (documented in the model card)."""

    careful: float = 0.32
    reflect: float = 0.10
    guess: float = 0.58
    unboxed: float = 0.22  # share of documents, any style, that end without a box
    slip: float = 0.12  # chance that one careful step is computed wrong
    guess_right: float = 0.30


def _slip(rng: random.Random, v: Fraction) -> Fraction:
    d = rng.choice([-3, -2, -1, 1, 2, 3])
    if v.denominator != 1 and rng.random() < 0.5:
        return Fraction(v.numerator + d, v.denominator) if v.numerator + d else v + 1
    return v + d


def _ending(ans: str, boxed: bool) -> str:
    return f"The answer is \\boxed{{{ans}}}." if boxed else f"The answer is {ans}."


def solve(p: WorldProblem, rng: random.Random, style: str, boxed: bool, mix: StyleMix = StyleMix()) -> tuple[str, bool]:
    """(solution text, whether its final answer is right) for `p` in `style`."""
    gold = Fraction(p.steps[-1][1]) if p.steps[-1][1] is not None else None
    if style == "guess":
        v = gold if rng.random() < mix.guess_right else _slip(rng, gold)
        return _ending(fmt(v), boxed), v == gold
    # careful / reflect: replay the steps; one step may slip, and the slip propagates
    slip_at = rng.randrange(len(p.steps)) if rng.random() < mix.slip * (1 + 0.3 * (p.level - 1)) else -1
    lines, offset, final = [], Fraction(0), None
    for i, (tmpl, val) in enumerate(p.steps):
        if val is None:
            lines.append(tmpl)
            continue
        shown = val + offset
        if i == slip_at:
            wrong = _slip(rng, shown)
            offset += wrong - shown
            shown = wrong
        final = shown
        lines.append(tmpl.format(_plain(shown)) if "{}" in tmpl else tmpl)
    right = final == gold
    if style == "reflect":
        if not right and rng.random() < 0.8:  # the recheck catches most slips
            lines.append(f"Let me recheck: {_plain(final)} is wrong, recalculate: {_plain(gold)}.")
            final, right = gold, True
        else:
            lines.append(f"Let me recheck: {_plain(final)} is right.")
    return "\n".join(lines + [_ending(fmt(final), boxed)]), right


def sample_document(p: WorldProblem, rng: random.Random, mix: StyleMix = StyleMix()) -> tuple[str, str, bool]:
    """(style, solution, right) drawn from the corpus mix."""
    u = rng.random()
    style = "careful" if u < mix.careful else "reflect" if u < mix.careful + mix.reflect else "guess"
    boxed = rng.random() >= mix.unboxed
    text, right = solve(p, rng, style, boxed, mix)
    return style, text, right
