// SPDX-License-Identifier: MIT
using System.Collections.Generic;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// Options of one checkpointed segment (<see cref="Checkpoint"/>, <see cref="CheckpointModule"/>). The keyword
/// arguments of PyTorch's <c>torch.utils.checkpoint.checkpoint</c>, plus the parameter list that lets the
/// function forms route gradients the way the module forms do.
/// </summary>
public sealed record CheckpointOptions
{
    /// <summary>The defaults: RNG state preserved, parameters taken from the module (module forms) or found by a
    /// backward through the recomputed graph (function forms).</summary>
    public static CheckpointOptions Default { get; } = new();

    /// <summary>
    /// Whether the recompute sees the random-number state the forward saw, so that dropout and other random
    /// operations give the same values twice (true, the default, as PyTorch's <c>preserve_rng_state</c>). Covers
    /// TorchSharp's default CPU generator, the <see cref="Generators"/> listed here and, when an input or
    /// parameter is on CUDA, the CUDA generators (reseeded; see docs/checkpointing.md, "Random numbers").
    /// False skips all of it: a segment with random operations then gets different values in the recompute.
    /// </summary>
    public bool PreserveRngState { get; init; } = true;

    /// <summary>
    /// Tensors the segment uses besides its inputs and that need gradients (usually parameters it captures).
    /// When set, the checkpoint takes them as extra inputs of its graph node: their gradients flow through the
    /// node like the inputs' do, so <c>backward()</c> accumulates them and <see cref="Autograd.Grad"/> can
    /// differentiate with respect to them. Each one that requires grad must be a leaf. The module forms add the
    /// module's own parameters. A tensor the segment uses that is neither an input, a module parameter nor listed
    /// here gets no gradient through a checkpoint that has them. When null in a function form, the recompute runs a
    /// backward that accumulates into every leaf the segment reached, as PyTorch's re-entrant checkpoint does; such a
    /// checkpoint then cannot be differentiated by <see cref="Autograd.Grad"/> or by a backward given inputs (it
    /// throws, as PyTorch does): set an empty list when the segment captures nothing that needs a gradient.
    /// </summary>
    public IReadOnlyList<Tensor>? Parameters { get; init; }

    /// <summary>
    /// Extra CPU generators (TorchSharp <see cref="Generator"/> objects passed to random operations inside the
    /// segment) whose state is saved with the forward and restored for the recompute, as the default generator's
    /// is. Ignored when <see cref="PreserveRngState"/> is false.
    /// </summary>
    public IReadOnlyList<Generator>? Generators { get; init; }
}
