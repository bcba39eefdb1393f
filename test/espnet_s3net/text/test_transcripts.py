from espnet_s3net.data.kaldi_dir import read_kaldi_map, read_skipped, write_data_dir
from espnet_s3net.text.transcripts import prepare_text


def test_phones_chars_and_drop(tmp_path):
    utts = {"s-1": "hola mundo", "s-2": "¿?", "s-3": "adiós"}
    write_data_dir(str(tmp_path / "d"), {
        "wav.scp": {u: "/x.flac" for u in utts}, "text": utts, "utt2spk": {u: "s" for u in utts},
        "text_phn_list": {"s-3": "a d j o s"}})
    # "¿?" is not a normalised sentence, but it shows the drop path: espeak reads nothing
    counts = prepare_text(str(tmp_path / "d"), "es", cache_dir=str(tmp_path / "cache"))
    assert counts == {"utterances": 2, "given_phones": 1, "phonemized": 2, "dropped": 1}
    phones = read_kaldi_map(str(tmp_path / "d" / "text_phn"))
    assert phones == {"s-1": "o l a m u n d o", "s-3": "a d j o s"}
    assert read_kaldi_map(str(tmp_path / "d" / "text_char")) == {"s-1": "hola mundo", "s-3": "adiós"}
    assert read_skipped(str(tmp_path / "d")) == [("s-2", "phonemizes to nothing")]
    assert "s-2" not in read_kaldi_map(str(tmp_path / "d" / "wav.scp"))
