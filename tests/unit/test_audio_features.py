"""The log-mel features an extension's trailing audio is encoded from: a tone lands in the
mel band of its pitch, one frame per hop, on the Slaney scale LTX-2's audio VAE expects."""

from __future__ import annotations

import numpy as np
import pytest

from openimagine.backends.audio_features import _hz_to_mel, _mel_to_hz, log_mel, mel_filterbank

RATE, HOP, BINS = 16_000, 160, 64


def _centers() -> np.ndarray:
    top = _hz_to_mel(np.array(RATE / 2))
    return _mel_to_hz(np.linspace(0, top, BINS + 2))[1:-1]


@pytest.mark.parametrize("hz", [220.0, 1000.0, 3000.0, 6000.0])
def test_a_tone_peaks_in_the_band_of_its_pitch(hz: float) -> None:
    t = np.arange(RATE) / RATE
    tone = np.stack([np.sin(2 * np.pi * hz * t)] * 2).astype(np.float32)
    mel = log_mel(tone, RATE, HOP, BINS)
    assert mel.shape == (2, RATE // HOP, BINS)
    peak = int(np.median(mel[0].argmax(axis=1)))
    assert abs(_centers()[peak] - hz) / hz < 0.15


def test_the_scale_is_linear_below_1_khz_and_the_filters_cover_the_band() -> None:
    assert _hz_to_mel(np.array(1000.0)) == pytest.approx(15.0)  # Slaney: 200/3 Hz a mel
    assert _mel_to_hz(_hz_to_mel(np.array(4321.0))) == pytest.approx(4321.0)
    bank = mel_filterbank(RATE, 1024, BINS)
    assert bank.shape == (BINS, 513) and (bank >= 0).all()
    assert (bank.sum(axis=0)[3:-3] > 0).all()  # no frequency between the edges is dropped
