import numpy as np
import pytest

from espnet_s3net.synth.espeak import ESpeakError, get_engine


def test_voice_name_resolves_language_codes():
    engine = get_engine()
    assert engine.voice_name("fr-fr") == "roa/fr"
    assert engine.voice_name("cmn", "f2") == "sit/cmn+f2"
    with pytest.raises(ESpeakError, match="no voice for language 'xx-yy'"):
        engine.voice_name("xx-yy")


def test_synthesize_returns_int16_speech():
    engine = get_engine()
    assert engine.sample_rate == 22050
    audio = engine.synthesize("hola mundo", engine.voice_name("es", "m3"), rate=175, pitch=50)
    assert audio.dtype == np.int16 and audio.ndim == 1
    # two words at 175 words/min last well over 0.3 s; speech is not silent
    assert audio.size > 0.3 * engine.sample_rate
    assert np.abs(audio).max() > 1000


def test_rate_changes_duration():
    engine = get_engine()
    voice = engine.voice_name("es")
    slow = engine.synthesize("uno dos tres cuatro cinco", voice, rate=100)
    fast = engine.synthesize("uno dos tres cuatro cinco", voice, rate=300)
    # three times the rate: clearly shorter (espeak keeps some fixed pauses)
    assert fast.size < 0.6 * slow.size


def test_errors():
    engine = get_engine()
    with pytest.raises(ESpeakError, match="no voice"):
        engine.synthesize("hola", "no/such+voice")
    with pytest.raises(ValueError, match="rate 20"):
        engine.synthesize("hola", engine.voice_name("es"), rate=20)


def test_a_second_engine_gone_does_not_break_the_first():
    import gc

    from espnet_s3net.synth.espeak import ESpeak

    engine = get_engine()
    other = ESpeak()  # re-initialises the library and installs its own callback
    other.synthesize("hola", other.voice_name("es"))
    del other
    gc.collect()
    assert engine.synthesize("hola mundo", engine.voice_name("es")).size > 0
