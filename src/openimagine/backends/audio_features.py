"""The log-mel spectrogram LTX-2's audio VAE encodes: what an extension turns the input's
trailing audio into, so that it can condition the continuation.

LTX-2's pipelines only decode audio (latents → mel → vocoder); the encoder's input is the
features its reference code computes, which are the usual HiFi-GAN/BigVGAN ones: mono or
stereo at the VAE's sample rate (16 kHz), a 1024-point Hann STFT at the VAE's hop (160),
magnitudes through a Slaney-scale mel filterbank of the VAE's bins (64) over 0-8 kHz, then
`log(max(x, 1e-5))`. With real weights, a mismatch here would show as a seam in the audio;
with the tiny random weights, only the plumbing is exercised.
"""

from __future__ import annotations

import math

import numpy as np

N_FFT = 1024
_FLOOR = 1e-5


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    mel = hz / f_sp
    log_part = min_log_hz / f_sp + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    out: np.ndarray = np.where(hz >= min_log_hz, log_part, mel)
    return out


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    out: np.ndarray = np.where(
        mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel
    )
    return out


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """`[n_mels, n_fft // 2 + 1]` Slaney-normalized triangular filters over 0..sr/2."""
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2)), n_mels + 2)
    )
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per filter
    out: np.ndarray = weights.astype(np.float32)
    return out


def log_mel(audio: np.ndarray, sample_rate: int, hop: int, n_mels: int) -> np.ndarray:
    """`[C, T, n_mels]` log-mel frames of `[C, N]` audio already at `sample_rate`, one frame
    per `hop` samples (T = N // hop)."""
    import torch

    frames = audio.shape[1] // hop
    wave = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    spec = torch.stft(
        wave,
        n_fft=N_FFT,
        hop_length=hop,
        win_length=N_FFT,
        window=torch.hann_window(N_FFT),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    ).abs()[:, :, :frames]
    mel = torch.from_numpy(mel_filterbank(sample_rate, N_FFT, n_mels)) @ spec
    out: np.ndarray = torch.log(torch.clamp(mel, min=_FLOOR)).transpose(1, 2).numpy()
    return out
