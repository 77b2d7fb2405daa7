"""Build the offline tiny LTX-2 checkpoint: the real diffusers LTX-2 classes, tiny widths, seeded
random weights, and a tokenizer made from scratch — no hub access at any point.

Built once into the data dir and loaded back with `from_pretrained(local_files_only=True)`,
exactly like a real checkpoint. Its output is noise; every code path is real. Configuration
after `shared/notes/model-backends.md` §3 (an LTX-2.3 layout: 48 kHz stereo audio via BWE).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MARKER = "openimagine-model.json"
TINY_NAME = "tiny-ltx2-v1"
TINY_MAX_SEQUENCE_LENGTH = 32


def tiny_dir(models_dir: Path) -> Path:
    """Where the tiny checkpoint lives inside a models dir."""
    return models_dir / TINY_NAME


def ensure_tiny_checkpoint(models_dir: Path) -> Path:
    """Build the tiny checkpoint unless it is already there; safe across processes."""
    target = tiny_dir(models_dir)
    if (target / MARKER).exists():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with _locked(models_dir / f".{TINY_NAME}.lock"):
        if (target / MARKER).exists():  # another process built it while we waited
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{TINY_NAME}-", dir=models_dir))
        try:
            build_tiny_pipeline(staging)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tokenizer() -> Any:
    from transformers import GemmaTokenizer

    # Gemma-style byte-fallback BPE: 5 specials + 256 byte tokens encode any text.
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for w in ("▁a", "▁the", "▁robot", "▁dancing", "▁cat", "▁dog", "▁in", "▁rain", "▁city"):
        vocab[w] = len(vocab)
    tokenizer = GemmaTokenizer(vocab=vocab, merges=[])
    tokenizer.model_max_length = 64
    return tokenizer


def _text_encoder(vocab_size: int) -> Any:
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    text_cfg = {
        "vocab_size": vocab_size + 8,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "max_position_embeddings": 256,
        "sliding_window": 64,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 1,
    }
    vision_cfg = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    config = Gemma3Config(
        text_config=text_cfg,
        vision_config=vision_cfg,
        mm_tokens_per_image=4,
        boi_token_index=vocab_size,
        eoi_token_index=vocab_size + 1,
        image_token_index=vocab_size + 2,
    )
    torch.manual_seed(0)
    return Gemma3ForConditionalGeneration(config).eval()


def _transformer(caption_channels: int) -> Any:
    import torch
    from diffusers import LTX2VideoTransformer3DModel

    torch.manual_seed(0)
    return LTX2VideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        vae_scale_factors=(8, 32, 32),
        gated_attn=True,
        cross_attn_mod=True,
        audio_in_channels=2 * 16,
        audio_out_channels=2 * 16,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        audio_gated_attn=True,
        audio_cross_attn_mod=True,
        num_layers=2,
        caption_channels=caption_channels,
        rope_type="split",
        rope_double_precision=True,
        use_prompt_embeddings=False,
        perturbed_attn=True,
    )


def _connectors(caption_channels: int, text_layers: int) -> Any:
    import torch
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    torch.manual_seed(0)
    return LTX2TextConnectors(
        caption_channels=caption_channels,
        text_proj_in_factor=text_layers + 1,
        video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=8,
        video_gated_attn=True,
        audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=4,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=8,
        audio_gated_attn=True,
        connector_rope_base_seq_len=64,
        rope_type="split",
        per_modality_projections=True,
        video_hidden_dim=16,
        audio_hidden_dim=8,
        proj_bias=True,
    )


def _video_vae() -> Any:
    import torch
    from diffusers import AutoencoderKLLTX2Video

    # The real block layout (32x spatial, 8x temporal compression) with tiny channels.
    torch.manual_seed(0)
    return AutoencoderKLLTX2Video(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 16, 16, 16),
        decoder_block_out_channels=(8, 16, 16, 16),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, True),
        decoder_spatio_temporal_scaling=(True, True, True, True),
        decoder_inject_noise=(False,) * 5,
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_type=("spatiotemporal", "spatiotemporal", "temporal", "spatial"),
        upsample_residual=(False,) * 4,
        upsample_factor=(2, 2, 1, 2),
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
        decoder_spatial_padding_mode="zeros",
        spatial_compression_ratio=32,
        temporal_compression_ratio=8,
    )


def _audio_vae() -> Any:
    import torch
    from diffusers import AutoencoderKLLTX2Audio

    # Its latents_mean/std buffers are sized base_channels, so base_channels must equal
    # latent_channels * mel_bins / 4 (= the transformer's audio_in_channels).
    torch.manual_seed(0)
    return AutoencoderKLLTX2Audio(
        base_channels=32,
        output_channels=2,
        ch_mult=(1, 2, 4),
        num_res_blocks=1,
        in_channels=2,
        resolution=256,
        latent_channels=2,
        sample_rate=16000,
        mel_hop_length=160,
        is_causal=True,
        mel_bins=64,
    )


def _vocoder() -> Any:
    import torch
    from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE

    # hidden_channels ≥ 64: it halves at each of 6 upsamples.
    torch.manual_seed(0)
    return LTX2VocoderWithBWE(
        in_channels=2 * 64,
        hidden_channels=64,
        out_channels=2,
        upsample_kernel_sizes=[11, 4, 4, 4, 4, 4],
        upsample_factors=[5, 2, 2, 2, 2, 2],
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]],
        bwe_in_channels=2 * 64,
        bwe_hidden_channels=32,
        bwe_out_channels=2,
        bwe_upsample_kernel_sizes=[12, 11, 4, 4, 4],
        bwe_upsample_factors=[6, 5, 2, 2, 2],
        bwe_resnet_kernel_sizes=[3],
        bwe_resnet_dilations=[[1, 3, 5]],
        filter_length=512,
        hop_length=80,
        window_length=512,
        num_mel_channels=64,
        input_sampling_rate=16000,
        output_sampling_rate=48000,
    )


def build_tiny_pipeline(outdir: Path) -> None:
    """Construct the tiny pipeline with seeded random weights and save it to `outdir`."""
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline

    tokenizer = _tokenizer()
    text_encoder = _text_encoder(len(tokenizer.get_vocab()))
    hidden = text_encoder.config.text_config.hidden_size
    layers = text_encoder.config.text_config.num_hidden_layers
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )
    pipe = LTX2Pipeline(
        scheduler=scheduler,
        vae=_video_vae(),
        audio_vae=_audio_vae(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        connectors=_connectors(hidden, layers),
        transformer=_transformer(hidden),
        vocoder=_vocoder(),
    )
    pipe.save_pretrained(str(outdir), safe_serialization=True)
    marker = {
        "name": TINY_NAME,
        "random_weights": True,
        "default_steps": 8,
        "guidance": "distilled",
        "max_sequence_length": TINY_MAX_SEQUENCE_LENGTH,
        "description": "tiny LTX-2 (2.3 layout) with seeded random weights, built offline",
    }
    (outdir / MARKER).write_text(json.dumps(marker, indent=2))
