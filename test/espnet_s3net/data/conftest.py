import numpy as np
import pytest

from espnet_s3net.synth.corpus import encode_mp3

OLD_HEADER = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent"]
NEW_HEADER = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes",
              "age", "gender", "accents", "variant", "locale", "segment"]


def write_mp3(path, seconds=1.0):
    t = np.arange(int(48000 * seconds)) / 48000
    path.write_bytes(encode_mp3(0.3 * np.sin(2 * np.pi * 220 * t)))


def make_release(root, locale="es", header=NEW_HEADER, rows=None):
    """A one-locale release; rows: split -> list of (client, clip, sentence)."""
    rows = rows or {
        "train": [("c1", "a.mp3", "Hola, mundo."), ("c1", "b.mp3", "Buenos días")],
        "dev": [("c2", "c.mp3", "Adiós")],
        "test": [("c3", "d.mp3", "Gracias")],
    }
    loc = root / locale
    (loc / "clips").mkdir(parents=True)
    validated = []
    for split, items in rows.items():
        lines = ["\t".join(header)]
        for client, clip, sentence in items:
            values = {"client_id": client, "path": clip, "sentence": sentence, "locale": locale}
            lines.append("\t".join(values.get(col, "") for col in header))
            validated.append(lines[-1])
            if not (loc / "clips" / clip).exists():
                write_mp3(loc / "clips" / clip)
        (loc / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (loc / "validated.tsv").write_text("\n".join(["\t".join(header)] + validated) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def release(tmp_path):
    return make_release(tmp_path / "cv")
