"""Speech synthesis with the espeak-ng shared library (ctypes binding).

The library and its voice data come from the ``espeakng-loader`` package, so no
system espeak installation is needed. The engine is driven through its C API in
synchronous retrieval mode: every call of :meth:`ESpeak.synthesize` runs
``espeak_Synth`` to completion and collects the int16 samples handed to the
synthesis callback.

espeak-ng keeps one global engine per process, so :func:`get_engine` returns a
process-wide singleton.
"""

import ctypes
import os
import threading
from typing import Dict, List, Optional

import numpy as np

# espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS (retrieval, returns when done).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_PARAMETER values.
_ESPEAK_RATE = 1
_ESPEAK_VOLUME = 2
_ESPEAK_PITCH = 3
_ESPEAK_RANGE = 4
# espeak_Synth flags and position type.
_ESPEAK_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0

#: Speaking rate limits of espeak-ng, words per minute.
RATE_MIN, RATE_MAX = 80, 450

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class ESpeakError(RuntimeError):
    """An espeak-ng call failed."""


class ESpeak:
    """One initialised espeak-ng engine.

    Attributes:
        sample_rate: output sample rate in Hz (22050 for espeak-ng).
    """

    def __init__(self, library_path: Optional[str] = None, data_path: Optional[str] = None):
        if library_path is None or data_path is None:
            import espeakng_loader

            library_path = library_path or espeakng_loader.get_library_path()
            data_path = data_path or espeakng_loader.get_data_path()
        self._lib = ctypes.CDLL(library_path)
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        # Seeds the engine's own noise generator (used by breathy/Klatt voices).
        self._set_rand_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_rand_seed is not None:
            self._set_rand_seed.argtypes = [ctypes.c_long]
            self._set_rand_seed.restype = None

        self.data_path = data_path
        self._voice_files: Optional[Dict[str, str]] = None
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate <= 0:
            raise ESpeakError(f"espeak_Initialize failed with data path {data_path!r}")
        self.sample_rate = int(rate)
        self._chunks: List[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference alive
        lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.Lock()

    def _collect(self, wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(ctypes.string_at(wav, num_samples * 2))
        return 0

    def voice_name(self, language: str, variant: Optional[str] = None) -> str:
        """The name ``espeak_SetVoiceByName`` accepts for a language code.

        Language codes such as ``fr-fr`` are not voice names; they are looked up
        in the ``language`` lines of the voice files under ``espeak-ng-data/lang``
        and turned into the file identifier (``roa/fr``). ``variant`` (e.g.
        ``"m3"``) is appended as ``+m3``.
        """
        if self._voice_files is None:
            self._voice_files = self._scan_voice_files()
        key = language.lower()
        if key not in self._voice_files:
            raise ESpeakError(
                f"espeak-ng has no voice for language {language!r} "
                f"(searched {os.path.join(self.data_path, 'lang')})"
            )
        name = self._voice_files[key]
        return f"{name}+{variant}" if variant else name

    def _scan_voice_files(self) -> Dict[str, str]:
        """Map lower-cased language codes and file names to voice identifiers."""
        root = os.path.join(self.data_path, "lang")
        found: Dict[str, str] = {}
        for dirpath, _, filenames in sorted(os.walk(root)):
            for filename in sorted(filenames):
                path = os.path.join(dirpath, filename)
                ident = os.path.relpath(path, root).replace(os.sep, "/")
                found.setdefault(filename.lower(), ident)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) >= 2 and parts[0] == "language":
                            found.setdefault(parts[1].lower(), ident)
        return found

    def synthesize(
        self,
        text: str,
        voice: str,
        rate: int = 175,
        pitch: int = 50,
        pitch_range: int = 50,
        seed: int = 0,
    ) -> np.ndarray:
        """Speak ``text`` (UTF-8) with espeak voice ``voice`` (e.g. ``"roa/es+m3"``).

        Args:
            rate: words per minute (80..450).
            pitch: base pitch 0..100 (50 = the voice's normal pitch).
            pitch_range: intonation range 0..100 (50 = normal).
            seed: seed of the engine's noise generator (for reproducible output).

        Returns:
            int16 samples, shape (S,), at :attr:`sample_rate` Hz.
        """
        if not RATE_MIN <= rate <= RATE_MAX:
            raise ValueError(f"rate {rate} outside espeak's range {RATE_MIN}..{RATE_MAX}")
        lib = self._lib
        with self._lock:
            # the library holds one callback per process: make sure it is this engine's
            # (another ESpeak in the process may have replaced it, and may be gone)
            lib.espeak_SetSynthCallback(self._callback)
            if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise ESpeakError(f"espeak-ng has no voice {voice!r}")
            for param, value in (
                (_ESPEAK_RATE, rate),
                (_ESPEAK_PITCH, pitch),
                (_ESPEAK_RANGE, pitch_range),
                (_ESPEAK_VOLUME, 100),
            ):
                if lib.espeak_SetParameter(param, int(value), 0) != _EE_OK:
                    raise ESpeakError(f"espeak_SetParameter({param}, {value}) failed")
            if self._set_rand_seed is not None:
                self._set_rand_seed(seed)
            data = text.encode("utf-8") + b"\0"
            self._chunks = []
            status = lib.espeak_Synth(
                data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
            )
            if status != _EE_OK:
                raise ESpeakError(f"espeak_Synth failed (status {status}) for text {text!r}")
            lib.espeak_Synchronize()
            audio = np.frombuffer(b"".join(self._chunks), dtype=np.int16).copy()
            self._chunks = []
        return audio


_ENGINE: Optional[ESpeak] = None


def get_engine() -> ESpeak:
    """The process-wide espeak-ng engine (initialised on first use)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = ESpeak()
    return _ENGINE
