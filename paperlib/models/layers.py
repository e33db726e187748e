"""Causal convolution layers: the gated PixelCNN block with vertical and horizontal stacks.

References
----------
- van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu, "Conditional Image
  Generation with PixelCNN Decoders", NeurIPS 2016 (gated PixelCNN, section 2.2: gated
  activation units; two stacks that remove the blind spot of masked convolutions).
- Salimans, Karpathy, Chen, Kingma, "PixelCNN++", ICLR 2017 (section 2.5: masks replaced by
  down-shifted and right-shifted convolutions on padded inputs).

Causality scheme (our formulation; the module docstring is the one place it is written down)
----------------------------------------------------------------------------------------------
Pixels are ordered in raster order, t = i * W + j. With ``half = kernel_size // 2`` and feature
maps indexed like the image:

- Vertical stack: ``v[i, j]`` depends on input rows ``< i`` only (strictly above), columns
  ``j - r .. j + r``. The first layer reads input rows ``i - half .. i - 1`` (a ``(half, k)``
  kernel on the input padded by ``half`` rows at the top, last output row dropped: the
  down-shift). Later layers read ``v`` rows ``i - half .. i`` (a ``(half + 1, k)`` kernel) -
  since ``v`` at row ``i`` is already strictly above, this keeps it so. The down-shift is thus
  built into the vertical stack, and the v -> h connection (a 1x1 convolution of the vertical
  pre-activations) needs no further shift.
- Horizontal stack: ``h[i, j]`` depends on input row ``i``, columns ``< j`` (plus, through v,
  everything the vertical stack sees). First layer ("mask A", excludes the current pixel): a
  ``(1, half)`` kernel reading input columns ``j - half .. j - 1`` (right-shift). Later layers
  ("mask B", include the current position of the feature map): a ``(1, half + 1)`` kernel
  reading ``h`` columns ``j - half .. j``.

After L layers the receptive field of position (i, j) is exactly that of L stacked k x k masked
convolutions without the blind spot: rows ``i - L*half .. i - 1`` over columns
``j - L*half .. j + L*half``, plus row ``i`` columns ``j - L*half .. j - 1``
(see `receptive_field`).

Colour images: channels are treated jointly. Every channel of pixel t is predicted from the
pixels x_<t (all their channels); no channel of pixel t sees any channel of pixel t. The
decoder's per-pixel distribution then couples or factorises channels as it likes (see
`paperlib.models.pixelcnn_vae`). This is simpler than the R -> G -> B channel masks of the
original PixelCNN and is what the causality tests check.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def gate(pre: Tensor, dim: int = 1) -> Tensor:
    """Gated activation unit (van den Oord et al. 2016, eq. 2).

    y = tanh(W_f * h) * sigmoid(W_g * h), with ``pre`` the concatenation [W_f * h, W_g * h]
    along `dim` (so ``pre`` has twice the output channels).
    """
    f, g = pre.chunk(2, dim=dim)
    # y = tanh(f) * sigmoid(g)
    return torch.tanh(f) * torch.sigmoid(g)


class ShiftedConv2d(nn.Module):
    """A convolution on a zero-padded input, cropped back to the input's (H, W).

    Pads (left, right, top, bottom) by `pad`, convolves without padding, and keeps the first H
    rows and W columns of the result. With the pads chosen in `GatedMaskedConv2d` this gives the
    down-shifted (vertical) and right-shifted (horizontal) convolutions of PixelCNN++.

    Parameters
    ----------
    in_channels, out_channels : channels.
    kernel : (kh, kw) kernel size.
    pad : (left, right, top, bottom) zero padding.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int],
        pad: tuple[int, int, int, int],
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        """(B, Cin, H, W) -> (B, Cout, H, W)."""
        H, W = x.shape[-2:]
        return self.conv(F.pad(x, self.pad))[..., :H, :W]

    def flat_weight(self) -> Tensor:
        """The kernel as a matrix (Cout, Cin * kh * kw), for evaluation on one window."""
        return self.conv.weight.flatten(1)


class GatedMaskedConv2d(nn.Module):
    """One gated PixelCNN layer with a vertical and a horizontal stack (van den Oord et al. 2016).

    v_pre = W_v * v_in                                 (down-shifted conv, strictly above)
    v_out = tanh(v_pre_f) * sigmoid(v_pre_g)
    h_pre = W_h * h_in + W_vh v_pre                    (right-shifted conv + 1x1 from v)
    h_out = W_res tanh(h_pre_f) * sigmoid(h_pre_g) [+ h_in unless first]

    Parameters
    ----------
    in_channels : channels of v_in and h_in (the image channels for the first layer).
    channels : channels of v_out and h_out.
    kernel_size : odd k >= 3; the layer reads a k-wide window above and ``k // 2`` to the left.
    first : the first layer excludes the current pixel ("mask A") and has no residual; later
        layers include the current position of their input feature maps ("mask B").
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int, first: bool):
        super().__init__()
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
        half = kernel_size // 2
        self.first = first
        self.half = half
        self.channels = channels
        # vertical: rows i-half..i-1 of the input (first) or i-half..i of v (later)
        kh_v = half if first else half + 1
        self.v_conv = ShiftedConv2d(
            in_channels, 2 * channels, (kh_v, kernel_size), (half, half, half, 0)
        )
        # horizontal: columns j-half..j-1 of the input (first) or j-half..j of h (later)
        kw_h = half if first else half + 1
        self.h_conv = ShiftedConv2d(in_channels, 2 * channels, (1, kw_h), (half, 0, 0, 0))
        # v -> h: 1x1 on the vertical pre-activations (already strictly above: no shift needed)
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_res = nn.Conv2d(channels, channels, 1)
        if not first and in_channels != channels:
            raise ValueError("a residual layer needs in_channels == channels")

    @property
    def v_rows(self) -> int:
        """How many rows of padded input the vertical kernel reads."""
        return self.v_conv.conv.kernel_size[0]

    @property
    def h_cols(self) -> int:
        """How many columns of padded input the horizontal kernel reads."""
        return self.h_conv.conv.kernel_size[1]

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """Full maps: (B, Cin, H, W) x 2 -> (B, C, H, W) x 2."""
        v_pre = self.v_conv(v)  # (B, 2C, H, W)
        # h_pre = W_h * h + W_vh v_pre
        h_pre = self.h_conv(h) + self.v_to_h(v_pre)  # (B, 2C, H, W)
        h_out = self.h_res(gate(h_pre))  # (B, C, H, W)
        if not self.first:
            h_out = h_out + h
        return gate(v_pre), h_out

    # --- incremental evaluation (cached sampling) -----------------------------------------------

    def v_row(self, v_window: Tensor) -> tuple[Tensor, Tensor]:
        """The vertical stack at one row, from the padded rows its kernel reads.

        Parameters
        ----------
        v_window : (B, Cin, v_rows, W + 2*half) rows of the zero-padded input of the vertical
            conv (the ones that end at the row being computed).

        Returns
        -------
        v_out : (B, C, W) gated vertical features of that row.
        h_bias : (W, B, 2C) what the horizontal pre-activation adds to W_h * h along that row:
            W_vh v_pre + the biases of W_h and W_vh.
        """
        v_pre = self.v_conv.conv(v_window)[:, :, 0]  # (B, 2C, W)
        # W_vh v_pre, a 1x1 conv on the row, as a matrix product over channels
        vh = F.linear(v_pre.transpose(1, 2), self.v_to_h.weight[:, :, 0, 0], self.v_to_h.bias)
        h_bias = (vh + self.h_conv.conv.bias).transpose(0, 1).contiguous()  # (W, B, 2C)
        return gate(v_pre), h_bias

    def step_matrices(self) -> tuple[Tensor, Tensor, Tensor]:
        """The horizontal kernel and the residual 1x1 as matrices for `h_pixel`.

        Returns
        -------
        w_h : (h_cols * Cin, 2C), rows ordered (column, channel) to match a channels-last window.
        w_res : (C, C) transposed 1x1 weight.
        b_res : (C,) its bias.
        """
        w = self.h_conv.conv.weight[:, :, 0, :]  # (2C, Cin, kw)
        w_h = w.permute(2, 1, 0).reshape(-1, w.shape[0]).contiguous()  # (kw * Cin, 2C)
        return w_h, self.h_res.weight[:, :, 0, 0].t().contiguous(), self.h_res.bias

    def h_pixel(
        self,
        h_window: Tensor,
        h_bias: Tensor,
        h_in: Tensor | None,
        mats: tuple[Tensor, Tensor, Tensor],
    ) -> Tensor:
        """The horizontal stack at one position.

        Parameters
        ----------
        h_window : (B, h_cols * Cin) the columns the kernel reads of the zero-padded input row,
            channels last, flattened.
        h_bias : (B, 2C) this position's row of `v_row`'s ``h_bias``.
        h_in : (B, C) this layer's input at this position (the residual), None for the first.
        mats : `step_matrices`.

        Returns
        -------
        (B, C) h_out at this position.
        """
        w_h, w_res, b_res = mats
        # h_pre = W_h * h + W_vh v_pre (+ biases): the conv evaluated on one window
        h_pre = torch.addmm(h_bias, h_window, w_h)  # (B, 2C)
        h_out = torch.addmm(b_res, gate(h_pre), w_res)  # (B, C)
        if h_in is not None:
            h_out = h_out + h_in
        return h_out


class ReceptiveField(NamedTuple):
    """Which earlier pixels a position (i, j) sees after a stack of gated layers.

    rows_above : rows i - rows_above .. i - 1 are seen ...
    cols_left, cols_right : ... over columns j - cols_left .. j + cols_right; on row i itself,
        columns j - cols_left .. j - 1.
    n_pixels : size of the field (away from the image borders).
    """

    rows_above: int
    cols_left: int
    cols_right: int
    n_pixels: int


def receptive_field(n_layers: int, kernel_size: int) -> ReceptiveField:
    """Receptive field of `n_layers` gated layers with odd `kernel_size` (see module docstring).

    Each layer extends the field by ``half = kernel_size // 2`` rows up, columns left and columns
    right, so r = n_layers * half and n_pixels = r * (2r + 1) + r.
    """
    r = n_layers * (kernel_size // 2)
    # rows above: r rows of width 2r + 1; the current row: r pixels to the left
    return ReceptiveField(r, r, r, r * (2 * r + 1) + r)


class GatedPixelCNNStack(nn.Module):
    """A stack of `GatedMaskedConv2d` layers: image -> causal features h_L (raster order).

    The output at (i, j) depends only on pixels before (i, j) in raster order, all channels.

    Parameters
    ----------
    in_channels : channels of the (pre-processed) image.
    channels : hidden channels of every layer.
    n_layers : number of gated layers (>= 1).
    kernel_size : odd k >= 3.
    """

    def __init__(self, in_channels: int, channels: int, n_layers: int, kernel_size: int):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.layers = nn.ModuleList(
            [
                GatedMaskedConv2d(
                    in_channels if i == 0 else channels, channels, kernel_size, i == 0
                )
                for i in range(n_layers)
            ]
        )
        self.in_channels = in_channels
        self.channels = channels
        self.kernel_size = kernel_size
        self.half = kernel_size // 2

    @property
    def receptive_field(self) -> ReceptiveField:
        """The computed receptive field (see `receptive_field`)."""
        return receptive_field(len(self.layers), self.kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        """(B, Cin, H, W) -> (B, C, H, W) causal features h_L."""
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h)
        return h


class CachedStackState:
    """Buffers for evaluating a `GatedPixelCNNStack` one pixel at a time (cached sampling).

    The vertical features of row i depend only on rows < i, so they are computed once per row
    (`start_row`), from cached per-layer rows. The horizontal stack at (i, j) needs, per layer,
    one new position from a window of at most ``half + 1`` cached positions to its left
    (`pixel`). Each activation is thus computed exactly once per image, as in one full forward
    pass, instead of once per pixel.

    Parameters
    ----------
    stack : the stack to evaluate.
    batch, height, width : image sizes.
    like : a tensor whose device and dtype the buffers take.

    Notes
    -----
    The caller writes each new pixel with `write` before asking for the next position.
    Positions not yet written are never read (causality), so their content does not matter.
    """

    def __init__(
        self, stack: GatedPixelCNNStack, batch: int, height: int, width: int, like: Tensor
    ):
        self.stack = stack
        self.half = half = stack.half
        self.H, self.W = height, width
        B, C, Cin = batch, stack.channels, stack.in_channels
        # the zero-padded stack input (top and both sides by half), channels first (vertical)
        self.x_pad = like.new_zeros(B, Cin, height + half, width + 2 * half)
        # its current row, channels last (horizontal windows are then plain views)
        self.x_row = like.new_zeros(B, width + 2 * half, Cin)
        # v^l at padded coordinates, zeros in the padding (the vertical conv's zero padding)
        self.v_pad = [like.new_zeros(B, C, height + half, width + 2 * half) for _ in stack.layers]
        # the current row's horizontal outputs per layer, left-padded by half, channels last
        self.h_pad = [like.new_zeros(B, width + half, C) for _ in stack.layers]
        self.mats = [layer.step_matrices() for layer in stack.layers]
        self.h_bias: list[Tensor] = []
        self.row = -1

    def fill(self, x_in: Tensor) -> None:
        """Set the whole stack input (B, Cin, H, W) (its initial value)."""
        self.x_pad[:, :, self.half :, self.half : self.half + self.W] = x_in

    def write(self, i: int, j: int, value: Tensor) -> None:
        """Set the stack input at pixel (i, j) to `value` (B, Cin)."""
        self.x_pad[:, :, self.half + i, self.half + j] = value
        self.x_row[:, self.half + j] = value

    def start_row(self, i: int) -> None:
        """Compute the vertical stack of row i (needs all pixels of rows < i written)."""
        half = self.half
        self.h_bias = []
        src = self.x_pad
        for layer, v_pad in zip(self.stack.layers, self.v_pad):
            # padded rows i .. i + v_rows - 1 are original rows i - half .. (i - 1 or i)
            v_out, h_bias = layer.v_row(src[:, :, i : i + layer.v_rows])  # (B,C,W), (W,B,2C)
            v_pad[:, :, half + i, half : half + self.W] = v_out
            self.h_bias.append(h_bias)
            src = v_pad
        self.x_row.copy_(self.x_pad[:, :, half + i].transpose(1, 2))
        self.row = i

    def pixel(self, j: int) -> Tensor:
        """(B, C) h_L at (row, j); needs the pixels (row, < j) written."""
        half = self.half
        B = self.x_row.shape[0]
        # padded columns j .. j + h_cols - 1 are original columns j - half .. (j - 1 or j)
        src = self.x_row  # (B, W + 2*half, Cin), left-padded by half as in h_conv
        h_in = None
        for layer, h_bias, h_pad, mats in zip(
            self.stack.layers, self.h_bias, self.h_pad, self.mats
        ):
            window = src[:, j : j + layer.h_cols].reshape(B, -1)  # (B, h_cols * Cin)
            h = layer.h_pixel(window, h_bias[j], h_in, mats)  # (B, C)
            h_pad[:, half + j] = h
            src, h_in = h_pad, h
        return h_in
