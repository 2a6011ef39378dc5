"""Prompt templates: the ONLY place prompt strings live (training and evaluation both use them).

A template turns a bare problem into chat messages; `render_prompt` renders those through the
tokenizer's chat template when it has one (Qwen2.5-Math's adds its default system message to the
training prompt, exactly as verl does), and otherwise uses the template's literal fallback string.

- `deepscaler`      the paper's training prompt (verl parquet of the paper's repo): one user turn,
                    problem + " Let's think step by step and output the final answer within \\boxed{}."
- `qwen25-math-cot` the paper's evaluation prompt (Qwen2.5-Math evaluation kit): system "Please
                    reason step by step, and put your final answer within \\boxed{}." + the problem
- `plain`           the bare problem as the user turn
- `testbed`         the embedded testbed's prompt: the bare problem as the user turn (the testbed
                    tokenizer's chat template renders it as "Q: ...\\nA: ")
"""

from __future__ import annotations

from dataclasses import dataclass

from rlvr.errors import UserError, closest

DEEPSCALER_SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."
QWEN_COT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class Template:
    name: str
    system: str | None  # system message, or None
    user_suffix: str  # appended to the problem in the user turn
    fallback: str  # literal rendering with {problem}, used when the tokenizer has no chat template
    description: str

    def messages(self, problem: str) -> list[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": problem + self.user_suffix}]


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template("deepscaler", None, DEEPSCALER_SUFFIX, "{problem}" + DEEPSCALER_SUFFIX,
                 "the paper's training prompt (DeepScaleR / verl parquet)"),
        Template("qwen25-math-cot", QWEN_COT_SYSTEM, "",
                 "<|im_start|>system\n" + QWEN_COT_SYSTEM + "<|im_end|>\n<|im_start|>user\n{problem}<|im_end|>\n"
                 "<|im_start|>assistant\n",
                 "the paper's evaluation prompt (Qwen2.5-Math evaluation kit, qwen25-math-cot)"),
        Template("plain", None, "", "{problem}", "the bare problem"),
        Template("testbed", None, "", "Q: {problem}\nA: ", "the embedded testbed's prompt"),
    ]
}


def get_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise UserError(f"unknown prompt template {name!r}{closest(name, TEMPLATES)} (valid: {', '.join(TEMPLATES)})")
    return TEMPLATES[name]


def render_prompt(problem: str, template: str | Template, tokenizer=None) -> str:
    """The prompt text a model sees for `problem` (generation prompt included)."""
    t = get_template(template) if isinstance(template, str) else template
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(t.messages(problem), tokenize=False, add_generation_prompt=True)
    return t.fallback.replace("{problem}", problem)
