"""Phone and character transcripts of a data directory of one language (recipe stage 4)."""

import logging
import os

from espnet_s3net.data.kaldi_dir import drop_utterances, read_kaldi_map, write_kaldi_map
from espnet_s3net.languages import get_language
from espnet_s3net.text.phonemize import Phonemizer


def prepare_text(data_dir: str, locale: str, cache_dir: str = None, nj: int = 1) -> dict:
    """Write ``text_phn`` and ``text_char`` of ``data_dir``; return counts."""
    get_language(locale)
    text_path = os.path.join(data_dir, "text")
    if not os.path.isfile(text_path):
        raise FileNotFoundError(f"{text_path} does not exist (run the earlier stages first)")
    text = read_kaldi_map(text_path)
    phn_path = os.path.join(data_dir, "text_phn")
    list_path = os.path.join(data_dir, "text_phn_list")
    given = read_kaldi_map(list_path) if os.path.isfile(list_path) else {}
    given = {utt: phones for utt, phones in given.items() if utt in text and phones.strip()}
    todo = sorted(utt for utt in text if utt not in given)
    phonemizer = Phonemizer(locale, cache_dir=cache_dir, njobs=nj)
    phones = dict(given)
    phones.update(zip(todo, phonemizer(text[utt] for utt in todo)))
    empty = {utt: "phonemizes to nothing" for utt, p in phones.items() if not p.strip()}
    write_kaldi_map(phn_path, {utt: p for utt, p in phones.items() if utt not in empty})
    write_kaldi_map(os.path.join(data_dir, "text_char"), text)
    if empty:
        drop_utterances(data_dir, empty)
        for utt in sorted(empty):
            logging.warning(f"{data_dir}: dropped {utt} ({text[utt]!r} phonemizes to nothing)")
    counts = {"utterances": len(text) - len(empty), "given_phones": len(given),
              "phonemized": len(todo), "dropped": len(empty)}
    logging.info(f"{data_dir}: {counts}")
    return counts
