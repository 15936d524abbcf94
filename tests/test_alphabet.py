"""The residue vocabulary: token layout, the ambiguous-letter rule, and the errors bad input raises."""

import pickle

import numpy as np
import pytest

from lsdkit.alphabet import (ALPHABET, BOS, EOS, FIRST_RESIDUE, MASK, PAD, STANDARD, UNK, Alphabet,
                             SequenceError)


def test_token_layout_is_fixed():
    assert len(ALPHABET) == 25
    assert (PAD, MASK, BOS, EOS, FIRST_RESIDUE, UNK) == (0, 1, 2, 3, 4, 24)
    assert ALPHABET.tokens[:4] == ["<pad>", "<mask>", "<bos>", "<eos>"]
    assert "".join(ALPHABET.tokens[4:24]) == "ACDEFGHIKLMNPQRSTVWY" == STANDARD
    assert ALPHABET.tokens[24] == "X"
    assert list(ALPHABET.residue_ids) == list(range(4, 24))


def test_pinned_token_ids():
    assert ALPHABET.encode("MKTAYIAKQR").tolist() == [14, 12, 20, 4, 23, 11, 4, 12, 17, 18]
    assert ALPHABET.encode(STANDARD + "X").tolist() == list(range(4, 25))
    assert ALPHABET.encode("MKTAYIAKQR").dtype == np.int64


def test_lower_case_accepted():
    assert ALPHABET.encode("mktayiakqrx").tolist() == ALPHABET.encode("MKTAYIAKQRX").tolist()
    assert ALPHABET.clean("mkuB") == "MKXX"


def test_ambiguous_letters_map_to_x_by_default():
    assert ALPHABET.encode("BZJUO").tolist() == [UNK] * 5
    assert ALPHABET.encode("bzjuo").tolist() == [UNK] * 5


def test_custom_ambiguous_rule():
    sec_to_cys = Alphabet(ambiguous={"U": "C"})
    assert sec_to_cys.encode("MUK").tolist() == [14, 5, 12]           # U -> C (token 5)
    with pytest.raises(SequenceError) as e:
        sec_to_cys.encode("MBK", record="r")                           # B is not in this rule
    assert (e.value.position, e.value.letter) == (2, "B")
    assert sec_to_cys.signature() != ALPHABET.signature()


def test_empty_rule_makes_ambiguous_letters_errors():
    strict = Alphabet(ambiguous={})
    with pytest.raises(SequenceError, match=r"record 'P1': position 3: invalid residue 'U'.*not mapped"):
        strict.encode("MKUA", record="P1")
    assert strict.encode("MKXA").tolist() == [14, 12, 24, 4]         # X itself stays valid


@pytest.mark.parametrize("seq, position, letter", [
    ("MK7A", 3, "7"),           # digit
    ("MK*A", 3, "*"),           # stop inside the sequence
    ("MK A", 3, " "),           # space
    ("MK-A", 3, "-"),           # gap
    ("MKA**", 4, "*"),          # only ONE trailing stop is stripped
    ("MKé", 3, "é"),            # non-ASCII
])
def test_invalid_letters_name_record_position_letter(seq, position, letter):
    with pytest.raises(SequenceError) as e:
        ALPHABET.encode(seq, record="Q9XYZ1")
    err = e.value
    assert (err.record, err.position, err.letter) == ("Q9XYZ1", position, letter)
    assert "Q9XYZ1" in str(err) and f"position {position}" in str(err)


def test_trailing_stop_is_stripped():
    assert ALPHABET.encode("MKA*").tolist() == ALPHABET.encode("MKA").tolist()


@pytest.mark.parametrize("seq", ["", "*"])
def test_empty_sequence_raises(seq):
    with pytest.raises(SequenceError, match="record 'E1': empty sequence"):
        ALPHABET.encode(seq, record="E1")


def test_too_long_with_max_len_raises():
    assert len(ALPHABET.encode("MKTA", max_len=4)) == 4
    with pytest.raises(SequenceError, match="more than max_len=3") as e:
        ALPHABET.encode("MKTA", record="L1", max_len=3)
    assert (e.value.record, e.value.position, e.value.letter) == ("L1", 4, "A")


def test_non_string_raises():
    with pytest.raises(SequenceError, match="must be a string"):
        ALPHABET.encode(b"MKT", record="b")


@pytest.mark.parametrize("rule", [{"A": "X"}, {"U": "*"}, {"1": "X"}, {"U": "CC"}, {"é": "X"}])
def test_bad_rules_rejected(rule):
    with pytest.raises(ValueError, match="ambiguous-letter rule"):
        Alphabet(ambiguous=rule)


def test_decode_and_specials():
    toks = [BOS, *ALPHABET.encode("MKX"), EOS, PAD]
    assert ALPHABET.decode(toks) == "MKX"
    assert ALPHABET.decode(toks, strip_special=False) == "<bos>MKX<eos><pad>"


def test_batch_encode_pads_right_with_mask():
    tokens, mask = ALPHABET.batch_encode(["MK", "A"], ids=["a", "b"])
    assert tokens.tolist() == [[14, 12], [4, PAD]]
    assert mask.tolist() == [[True, True], [True, False]]
    with pytest.raises(SequenceError, match="record 'b'"):
        ALPHABET.batch_encode(["MK", "A1"], ids=["a", "b"])
    with pytest.raises(ValueError, match="non-empty"):
        ALPHABET.batch_encode([])


def test_alphabet_is_hashable_comparable_and_picklable():
    assert Alphabet() == ALPHABET and hash(Alphabet()) == hash(ALPHABET)
    clone = pickle.loads(pickle.dumps(Alphabet(ambiguous={"U": "C"})))
    assert clone.encode("U").tolist() == [5]
    assert ALPHABET.signature().startswith("<pad>|<mask>|<bos>|<eos>|A|C|")
