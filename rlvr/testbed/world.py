"""The synthetic math world: a seeded generator of word problems with gold answers and worked
solutions in several styles.

Six categories in the spirit of MATH's subjects, each with difficulty levels 1-5:
  arithmetic      multi-step addition and subtraction           (integers, can be negative)
  algebra         solve a*x + b = c                              (integers, can be negative)
  number_theory   remainders and greatest common divisors        (integers)
  counting        choose k of n, arrangements, multiples         (integers)
  fractions       sums and differences of fractions              (reduced \\frac{p}{q} or integer)
  geometry        rectangle / triangle areas and perimeters      (integers)

A problem carries its working as a function of a calculator: each step asks the calculator for the
value of an expression written with the values shown so far, so a slipped step propagates through
the rest of the working consistently (the next line starts from the wrong value, as a person's
would). Numbers stay small: the base model is a few million parameters reading characters, and the
careful style must be usually right for RL to have something to select.

Solutions come in styles (nothing in the problem says which one a document uses):
  careful   step-by-step working; a step with a multi-digit result may slip
  reflect   careful working, then a "Let me recheck" pass that usually catches a slip
  guess     a bare answer, right a fraction of the time, otherwise off by a little
and end either in `\\boxed{answer}` or, for a share of documents, in an unboxed "The answer is N."
The pre-training corpus mixes them; RL on a single problem then has something general to learn
(prefer careful, reflective, boxed answers), as format correction and rising self-reflection do
for Qwen2.5-Math in the paper.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

CATEGORIES = ["arithmetic", "algebra", "number_theory", "counting", "fractions", "geometry"]

Calc = Callable[[str, Fraction], Fraction]  # (expression as shown, its exact value) -> value shown
Work = Callable[[Calc], Fraction]  # the working of a problem; returns the final shown value


@dataclass(frozen=True)
class WorldProblem:
    category: str
    level: int
    problem: str
    answer: str  # canonical LaTeX: an integer, a negative integer, or \frac{p}{q}
    work: Work


def fmt(x: Fraction | int) -> str:
    """Canonical LaTeX of a rational: '12', '-3', '\\frac{3}{4}', '-\\frac{5}{2}'."""
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    sign = "-" if x < 0 else ""
    return f"{sign}\\frac{{{abs(x.numerator)}}}{{{x.denominator}}}"


def plain(x: Fraction | int) -> str:
    """A value as it appears inside working: 12, -3, 3/4."""
    x = Fraction(x)
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _exact(expr: str, value: Fraction) -> Fraction:
    return Fraction(value)


def gold_of(p: WorldProblem) -> Fraction:
    return p.work(_exact)


# --- problem makers: each returns (problem text, working) -------------------------------------------

_NAMES = ["Ann", "Ben", "Cy", "Dee", "Eli", "Fay", "Gus", "Ivy"]
_ITEMS = ["apples", "coins", "cards", "stamps", "marbles", "books"]


def _arithmetic(rng: random.Random, level: int):
    n_ops = 1 + (level + 1) // 2  # 2..4 operations
    hi = [6, 9, 9, 12, 15][level - 1]
    start = rng.randint(2, 2 * hi)
    ops = [(rng.choice("+-"), rng.randint(2, hi)) for _ in range(n_ops)]
    expr = str(start) + "".join(f" {op} {v}" for op, v in ops)
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    if rng.random() < 0.5 or any(op == "-" for op, _ in ops):
        text = rng.choice([f"Compute {expr}.", f"{name} computes {expr}. What is the result?"])
    else:
        text = f"{name} has {start} {item}, then gets " + ", then gets ".join(str(v) for _, v in ops) + \
            f". How many {item} now?"

    def work(c: Calc) -> Fraction:
        acc = Fraction(start)
        for op, v in ops:
            acc = c(f"{plain(acc)} {op} {v}", acc + v if op == "+" else acc - v)
        return acc
    return text, work


def _algebra(rng: random.Random, level: int):
    a = rng.randint(2, [3, 4, 5, 7, 9][level - 1])
    x = rng.randint(-5 if level >= 3 else 1, [5, 7, 9, 9, 9][level - 1])
    b = rng.randint(-[5, 9, 12, 15, 20][level - 1], [5, 9, 12, 15, 20][level - 1])
    c0 = a * x + b
    bs = f"+ {b}" if b >= 0 else f"- {-b}"
    text = f"Solve for x: {a}x {bs} = {c0}."

    def work(c: Calc) -> Fraction:
        rhs = c(f"{a}x = {c0} {'-' if b >= 0 else '+'} {abs(b)}", Fraction(c0 - b))
        return c(f"x = {plain(rhs)}/{a}", rhs / a)
    return text, work


def _number_theory(rng: random.Random, level: int):
    if rng.random() < 0.5:
        m = rng.randint(3, [4, 5, 7, 9, 9][level - 1])
        n = rng.randint(m + 1, m * [4, 6, 8, 9, 9][level - 1] + m - 1)
        text = f"What is the remainder when {n} is divided by {m}?"

        def work(c: Calc) -> Fraction:
            p = c(f"{m} * {n // m}", Fraction(m * (n // m)))
            return c(f"{n} - {plain(p)}", n - p)
        return text, work
    g = rng.randint(2, [3, 4, 5, 6, 8][level - 1])
    a, b = g * rng.randint(2, 6), g * rng.randint(2, 6)
    while a == b:
        b = g * rng.randint(2, 6)
    text = f"What is the greatest common divisor of {a} and {b}?"

    def work(c: Calc) -> Fraction:
        x, y = Fraction(max(a, b)), Fraction(min(a, b))
        while y:
            r = c(f"{plain(x)} mod {plain(y)}", x % y if x.denominator == y.denominator == 1 else Fraction(0))
            x, y = y, r
        return c("gcd", x)
    return text, work


def _counting(rng: random.Random, level: int):
    n = rng.randint(4, 4 + level)
    who = rng.choice(["students", "books", "flags", "toppings", "players", "songs", "colors", "cards"])
    kind = rng.random()
    if kind < 0.4:
        k = 2 if level < 4 else rng.randint(2, 3)
        text = f"In how many ways can {k} {who} be chosen from {n} {who}?"

        def work(c: Calc) -> Fraction:
            prod = Fraction(n)
            for i in range(n - 1, n - k, -1):
                prod = c(f"{plain(prod)} * {i}", prod * i)
            return c(f"{plain(prod)} / {math.factorial(k)}", prod / math.factorial(k))
        return text, work
    if kind < 0.7:
        k = 2 if level < 3 else rng.randint(2, 3)
        text = f"How many ways can {k} of {n} {who} be put in a row?"

        def work(c: Calc) -> Fraction:
            prod = Fraction(n)
            for i in range(n - 1, n - k, -1):
                prod = c(f"{plain(prod)} * {i}", prod * i)
            return prod
        return text, work
    m = rng.randint(2, min(9, 3 + level))
    top = rng.randint(m * 2, m * 9 + m - 1)
    text = f"How many multiples of {m} are between 1 and {top}?"

    def work(c: Calc) -> Fraction:
        return c(f"{top} / {m}, rounded down,", Fraction(top // m))
    return text, work


def _fractions(rng: random.Random, level: int):
    dmax = [3, 4, 5, 6, 6][level - 1]
    b, d = rng.randint(2, dmax), rng.randint(2, dmax)
    a, c0 = rng.randint(1, b * 2 - 1), rng.randint(1, d * 2 - 1)
    op = rng.choice("+-")
    text = f"Compute {a}/{b} {op} {c0}/{d}. Give the answer as a reduced fraction."
    lcm = b * d // math.gcd(b, d)

    def work(c: Calc) -> Fraction:
        n1 = c(f"{a} * {lcm // b}", Fraction(a * (lcm // b))) if lcm != b else Fraction(a)
        n2 = c(f"{c0} * {lcm // d}", Fraction(c0 * (lcm // d))) if lcm != d else Fraction(c0)
        num = c(f"{plain(n1)} {op} {plain(n2)}", n1 + n2 if op == "+" else n1 - n2)
        return c(f"{plain(num)}/{lcm}", num / lcm)
    return text, work


def _geometry(rng: random.Random, level: int):
    hi = [5, 6, 8, 9, 12][level - 1]
    w, h = rng.randint(2, hi), rng.randint(2, hi)
    kind = rng.random()
    if kind < 0.4:
        text = f"A rectangle is {w} cm by {h} cm. What is its area in square cm?"
        return text, lambda c: c(f"{w} * {h}", Fraction(w * h))
    if kind < 0.7:
        text = f"A rectangle is {w} cm by {h} cm. What is its perimeter in cm?"

        def work(c: Calc) -> Fraction:
            s = c(f"{w} + {h}", Fraction(w + h))
            return c(f"2 * {plain(s)}", 2 * s)
        return text, work
    w += w % 2  # an even base keeps the area an integer
    text = f"A triangle has base {w} and height {h}. What is its area?"

    def work(c: Calc) -> Fraction:
        s = c(f"{w} * {h}", Fraction(w * h))
        return c(f"{plain(s)} / 2", s / 2)
    return text, work


_MAKERS = {"arithmetic": _arithmetic, "algebra": _algebra, "number_theory": _number_theory,
           "counting": _counting, "fractions": _fractions, "geometry": _geometry}


def make_problem(rng: random.Random, category: str | None = None, level: int | None = None) -> WorldProblem:
    category = category or rng.choice(CATEGORIES)
    level = level or rng.randint(1, 5)
    text, work = _MAKERS[category](rng, level)
    return WorldProblem(category, level, text, fmt(work(_exact)), work)


# --- solutions ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StyleMix:
    """Shares of solution styles in the pre-training corpus (documented in the model card)."""

    careful: float = 0.30
    reflect: float = 0.10
    guess: float = 0.60
    unboxed: float = 0.30  # share of documents, any style, that end without a box
    slip: float = 0.06  # chance that a step with a multi-digit result is computed wrong (x level factor)
    guess_right: float = 0.25


def _slip(rng: random.Random, v: Fraction) -> Fraction:
    d = rng.choice([-2, -1, 1, 2, 10, -10] if abs(v) >= 10 else [-2, -1, 1, 2])
    if v.denominator != 1 and rng.random() < 0.5:
        return Fraction(v.numerator + d, v.denominator) if v.numerator + d else v + 1
    return v + d


def _ending(ans: str, boxed: bool) -> str:
    return f"The answer is \\boxed{{{ans}}}." if boxed else f"The answer is {ans}."


def careful_lines(p: WorldProblem, rng: random.Random | None = None, slip: float = 0.0) -> tuple[list[str], Fraction]:
    """The working of `p` line by line; with `rng`, a step with a multi-digit result slips with
    probability `slip` and the rest of the working carries the wrong value on."""
    lines: list[str] = []

    def calc(expr: str, value: Fraction) -> Fraction:
        value = Fraction(value)
        if rng is not None and (abs(value) >= 10 or value.denominator != 1) and rng.random() < slip:
            value = _slip(rng, value)
        lines.append(f"{expr} = {plain(value)}")
        return value

    return lines, p.work(calc)


def solve(p: WorldProblem, rng: random.Random, style: str, boxed: bool, mix: StyleMix = StyleMix()) -> tuple[str, bool]:
    """(solution text, whether its final answer is right) for `p` in `style`."""
    gold = gold_of(p)
    if style == "guess":
        v = gold if rng.random() < mix.guess_right else _slip(rng, gold)
        return _ending(fmt(v), boxed), v == gold
    lines, final = careful_lines(p, rng, mix.slip * (1 + 0.25 * (p.level - 1)))
    right = final == gold
    if style == "reflect":
        if not right and rng.random() < 0.8:  # the recheck catches most slips
            lines.append(f"Let me recheck: {plain(final)} is wrong, recalculate: {plain(gold)}.")
            final, right = gold, True
        else:
            lines.append(f"Let me recheck: {plain(final)} is right.")
    return "\n".join(lines + [_ending(fmt(final), boxed)]), right


def sample_document(p: WorldProblem, rng: random.Random, mix: StyleMix = StyleMix()) -> tuple[str, str, bool]:
    """(style, solution, right) drawn from the corpus mix."""
    u = rng.random()
    style = "careful" if u < mix.careful else "reflect" if u < mix.careful + mix.reflect else "guess"
    boxed = rng.random() >= mix.unboxed
    text, right = solve(p, rng, style, boxed, mix)
    return style, text, right
