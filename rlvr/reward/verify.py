"""Answer equivalence: `is_equivalent(pred, gold) -> bool`.

Pure and deterministic, but NOT time-bounded by itself: symbolic comparison can be slow on hostile
input, so untrusted output is graded through `rlvr.reward.Grader`, which runs this under a
wall-clock limit and a memory cap in worker processes.

The decision runs in stages, cheapest first; the first stage that can decide, decides:
1. string normalisation (spacing, `\\left`, `\\dfrac`, degrees, units, `\\text{}`, `x=` prefixes) and
   equality of the normalised strings;
2. multiple-choice letters, when the gold answer is a letter A-E;
3. exact numbers (integers, decimals, fractions, mixed numbers, thousands separators, scientific
   notation, repeating decimals, percentages), compared exactly as fractions, or with a relative
   tolerance of 1e-6 when one side is inexact; 12.7 is NOT 12.8;
4. unordered comma lists ("1, 2" vs "2, 1") element by element, and inequalities vs intervals;
5. `math-verify` (parse + verify) for everything symbolic (radicals, pi, sets, tuples, matrices,
   intervals, expressions).
"""

from __future__ import annotations

import functools
import re
import threading
from fractions import Fraction

REL_TOL = 1e-6
MAX_EXPONENT = 400  # 10^e with |e| larger is not built as an exact number (hostile input)

_SPACE_CMDS = re.compile(r"(?<!\\)\\(?:[,;:! ]|quad|qquad|displaystyle|textstyle|left|right|big|Big|bigg|Bigg)(?![a-zA-Z])")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|mathbf|operatorname)\s*\{([^{}]*)\}")
_TRAILING_UNITS = re.compile(
    r"\s*(?:(?:\\text\{[^{}]*\}|\\mbox\{[^{}]*\}|\\mathrm\{[^{}]*\}|"
    r"(?:square|sq\.?|cubic)?\s*(?:units?|cm|mm|km|m|meters?|inches|inch|in|feet|foot|ft|yards?|miles?|"
    r"mph|hours?|hrs?|minutes?|mins?|seconds?|sec|s|days?|weeks?|years?|dollars?|cents?|degrees?|"
    r"pounds?|lbs?|kg|g|grams?|liters?|l|ml|people|students|ways|points?))(?:\^\{?[23]\}?)?)\s*$",
    re.IGNORECASE,
)
_VAR_PREFIX = re.compile(r"^\s*[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*(?!=)")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d)\s*(\d)")
_FRAC_HALF = re.compile(r"\\frac\s*\{([^{}]*)\}\s*(\d)")
_LETTER = re.compile(r"^\(?([A-Ea-e])\)?(?:\s.*)?$")


def _strip_text_wrappers(s: str) -> str:
    prev = None
    while prev != s:
        prev = s
        s = _TEXT_WRAP.sub(lambda m: m.group(1), s)
    return s


def normalize(s: str) -> str:
    """String-level clean-up shared by both sides (does not change the value of an answer)."""
    s = s.strip()
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_HALF.sub(r"\\frac{\1}{\2}", s)
    s = _SPACE_CMDS.sub("", s)
    s = _DEGREE.sub("", s)
    s = s.replace("{,}", ",").replace("\\$", "").replace("$", "")
    s = s.replace("\\%", "%")
    s = s.strip()
    while s.endswith(".") and not re.search(r"\d\.$", s[:-1] + "0"):  # a trailing full stop
        s = s[:-1].rstrip()
    if s.endswith(".") and re.fullmatch(r".*\d\.", s):
        s = s[:-1]
    # trailing units ("5\text{ cm}", "12 inches"), only when a value remains in front of them
    for _ in range(2):
        m = _TRAILING_UNITS.search(s)
        if m and m.start() > 0 and re.search(r"[\d}]\s*$", s[: m.start()]):
            s = s[: m.start()].rstrip()
    s = _strip_text_wrappers(s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"^([+-])\s+(?=[\d.\\])", r"\1", s)  # "- 5" -> "-5"
    return s


def _letter(s: str) -> str | None:
    m = _LETTER.match(s.strip())
    return m.group(1).upper() if m else None


_INT = r"\d+"
_NUM_PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$"), "thousands"),
    (re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)$"), "decimal"),
    (re.compile(r"^([+-])?\\frac\{\s*([+-]?\d+)\s*\}\{\s*([+-]?\d+)\s*\}$"), "frac"),
    (re.compile(r"^([+-])?(\d+)\s*/\s*(\d+)$"), "slash"),
    (re.compile(r"^([+-])?(\d+)\s*\\frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}$"), "mixed"),
    (re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))\s*(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{?\s*([+-]?\d+)\s*\}?$"), "sci"),
    (re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))[eE]([+-]?\d+)$"), "sci"),
    (re.compile(r"^10\s*\^\s*\{?\s*([+-]?\d+)\s*\}?$"), "pow10"),
    (re.compile(r"^([+-])?(\d*)\.(\d*)\\overline\{(\d+)\}$"), "repeat"),
]


def to_number(s: str) -> Fraction | None:
    """The exact value of a plain numeric answer, or None when `s` is not one (see module doc)."""
    s = s.strip()
    if not s or len(s) > 80:
        return None
    for pat, kind in _NUM_PATTERNS:
        m = pat.match(s)
        if not m:
            continue
        try:
            if kind in ("thousands", "decimal"):
                return Fraction(s.replace(",", ""))
            if kind in ("frac", "slash"):
                sign, a, b = m.groups()
                if int(b) == 0:
                    return None
                v = Fraction(int(a), int(b))
                return -v if sign == "-" else v
            if kind == "mixed":
                sign, w, a, b = m.groups()
                if int(b) == 0:
                    return None
                v = int(w) + Fraction(int(a), int(b))
                return -v if sign == "-" else v
            if kind == "sci":
                mant, exp = m.group(1), int(m.group(2))
                if abs(exp) > MAX_EXPONENT:
                    return None
                return Fraction(mant) * Fraction(10) ** exp
            if kind == "pow10":
                exp = int(m.group(1))
                return Fraction(10) ** exp if abs(exp) <= MAX_EXPONENT else None
            if kind == "repeat":
                sign, whole, fixed, rep = m.groups()
                base = Fraction(int(whole or "0"))
                if fixed:
                    base += Fraction(int(fixed), 10 ** len(fixed))
                base += Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fixed))
                return -base if sign == "-" else base
        except (ValueError, ZeroDivisionError, OverflowError):
            return None
    return None


def _numbers_equal(a: Fraction, b: Fraction) -> bool:
    if a == b:
        return True
    return abs(a - b) <= REL_TOL * max(abs(a), abs(b), Fraction(1, 10**6)) and (
        # a rounded decimal only matches when it carries the precision to do so
        _decimals(a) >= 6 or _decimals(b) >= 6
    )


def _decimals(x: Fraction) -> int:
    """Number of decimal digits needed to write x (large when it has no finite expansion)."""
    d = x.denominator
    k = 0
    while d % 10 == 0:
        d //= 10
        k += 1
    while d % 2 == 0:
        d //= 2
        k += 1
    while d % 5 == 0:
        d //= 5
        k += 1
    return k if d == 1 else 99


def _split_top_level(s: str) -> list[str]:
    """Split on commas not nested in (), [], {}."""
    parts, depth, cur = [], 0, []
    for c in s:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


_INEQ = re.compile(
    r"^\s*(?:(?P<lo>[^<>]+?)\s*(?P<lop><=|<|\\leq|\\le|\\lt)\s*)?(?P<var>[a-zA-Z])\s*"
    r"(?:(?P<hop><=|<|\\leq|\\le|\\lt|>=|>|\\geq|\\ge|\\gt)\s*(?P<hi>[^<>]+?))?\s*$"
)


def inequality_to_interval(s: str) -> str | None:
    """'-2 \\le x < 7' -> '[-2,7)'; 'x > 3' -> '(3,\\infty)'; None when `s` is not such a chain."""
    m = _INEQ.match(s)
    if not m or not (m.group("lop") or m.group("hop")):
        return None
    lo, lop, hop, hi = m.group("lo"), m.group("lop"), m.group("hop"), m.group("hi")
    if hop and hop in (">", "\\ge", "\\geq", ">=", "\\gt"):
        if lop:  # mixed directions like 'a < x > b' are not an interval
            return None
        closed = hop in ("\\ge", "\\geq", ">=")
        return ("[" if closed else "(") + hi.strip() + ",\\infty)"
    left = "(-\\infty"
    if lop:
        left = ("[" if lop in ("\\le", "\\leq", "<=") else "(") + lo.strip()
    right = "\\infty)"
    if hop:
        right = hi.strip() + ("]" if hop in ("\\le", "\\leq", "<=") else ")")
    return left + "," + right


@functools.lru_cache(maxsize=4096)
def _parse(text: str, in_main: bool):
    """math-verify parse of one answer, cached: a gold is compared with many responses (G samples,
    many checkpoints), and answers repeat."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    # math-verify's own timeouts use SIGALRM, which only works on the main thread; our Grader
    # enforces the wall-clock limit from outside the worker anyway.
    kw = {} if in_main else {"parsing_timeout": None}
    return tuple(parse(f"${text}$", extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()], **kw))


def _math_verify_equal(pred: str, gold: str) -> bool:
    from math_verify import verify

    in_main = threading.current_thread() is threading.main_thread()
    g = list(_parse(gold, in_main))
    p = list(_parse(pred, in_main))
    if not g or not p:
        return False
    vkw = {} if in_main else {"timeout_seconds": None}
    return bool(verify(g, p, **vkw))


_LATEX_CMD = re.compile(r"\\[a-zA-Z]+")
_RATIO = re.compile(r"^\s*[-+]?\d+(?:\.\d+)?\s*:\s*[-+]?\d+(?:\.\d+)?\s*$")


def _stray_text(p: str) -> bool:
    """Words (not LaTeX commands, not a single variable letter) or a colon that is not a plain ratio."""
    if ":" in p and not _RATIO.match(p):
        return True
    bare = _LATEX_CMD.sub(" ", p)
    return re.search(r"[a-zA-Z]{2,}", bare) is not None


_TOWER = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\d+\s*\^")
_BIG_FACTORIAL = re.compile(r"\d{4,}\s*!")


def _runaway(s: str) -> bool:
    return bool(_TOWER.search(s) or _BIG_FACTORIAL.search(s)) or s.count("\\frac") > 50


def _split_candidates(s: str) -> list[str]:
    return [c.strip() for c in re.split(r"\s+or\s+|\\text\{\s*or\s*\}|\\vee", s) if c.strip()]


def is_equivalent(pred: str | None, gold: str | None) -> bool:
    """True when the answer `pred` has the value of the gold answer `gold` (see module doc)."""
    if pred is None or gold is None:
        return False
    p, g = normalize(str(pred)), normalize(str(gold))
    if not p or not g:
        return False
    if p == g:
        return True
    # Several candidates ("3 or 4") answer nothing unless the gold is written the same way.
    if len(_split_candidates(p)) > 1 and len(_split_candidates(g)) == 1:
        return False
    # 2. multiple choice
    gl = _letter(g)
    if gl is not None and re.fullmatch(r"\(?[A-Ea-e]\)?", g):
        pl = _letter(p)
        return pl == gl
    # x = 5 vs 5 (but keep equations when the gold is an equation)
    if "=" not in g and _VAR_PREFIX.match(p):
        p = _VAR_PREFIX.sub("", p, count=1).strip()
        if p == g:
            return True
    if "=" not in p and _VAR_PREFIX.match(g) and g.count("=") == 1:
        g = _VAR_PREFIX.sub("", g, count=1).strip()
        if p == g:
            return True
    # 3. numbers (with percentages)
    p_pct, g_pct = p.endswith("%"), g.endswith("%")
    pn, gn = to_number(p.rstrip("%").strip()), to_number(g.rstrip("%").strip())
    if pn is not None and gn is not None:
        if _numbers_equal(pn, gn):
            return True
        if p_pct != g_pct:  # 50% vs 0.5
            scaled_p = pn / 100 if p_pct else pn
            scaled_g = gn / 100 if g_pct else gn
            return _numbers_equal(scaled_p, scaled_g)
        return False
    if gn is not None and pn is None and re.fullmatch(r"[-+\d.,/\s]*", p):
        return False  # a malformed number ("1.2.3") is not worth a symbolic parse
    # 4. unordered lists without brackets; inequalities vs intervals
    gp, pp = _split_top_level(g), _split_top_level(p)
    if len(gp) > 1 and len(gp) == len(pp) and not re.match(r"^[\(\[\{]", g) and not re.match(r"^[\(\[\{]", p):
        remaining = list(pp)
        for ge in gp:
            hit = next((i for i, pe in enumerate(remaining) if is_equivalent(pe, ge)), None)
            if hit is None:
                return False
            remaining.pop(hit)
        return True
    # A numeric gold against a non-numeric prediction: math-verify parses a prefix of text it cannot
    # read ("4:40 a.m." parses as 4), so stray words or clock/ratio colons decide "not equal" here.
    if gn is not None and _stray_text(p):
        return False
    pi, gi = inequality_to_interval(p), inequality_to_interval(g)
    if (pi is not None) != (gi is not None):
        p, g = pi or p, gi or g
    # 5. symbolic, unless the prediction has a shape that only hostile or runaway output has
    # (power towers, huge factorials): those would spend the whole time budget in sympy.
    if _runaway(p) and not _runaway(g):
        return False
    try:
        return _math_verify_equal(p, g)
    except Exception:  # math-verify raises on some malformed LaTeX; that answer is simply not equal
        return False
