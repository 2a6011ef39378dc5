def test_tiny_model_round_trip(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    text = "Compute 12+35*2. Put the answer in \\boxed{}."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # character-level: one token per character, spaces kept
    assert tok.decode(ids) == text
    prompt = tok.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "Q: 1+1?\nA: "
    assert model.config.vocab_size == len(tok) == 100
