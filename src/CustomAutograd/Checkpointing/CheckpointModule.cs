// SPDX-License-Identifier: MIT
using System;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// A module that runs the module it wraps as a checkpointed segment, so that a checkpointed block can sit
/// wherever a module goes, e.g. <c>nn.Sequential(blocks.Select(b =&gt; new CheckpointModule(b)))</c>. The
/// counterpart of PyTorch's <c>checkpoint_wrapper</c>. The wrapped module is registered as the submodule
/// <c>module</c> (its parameters appear as <c>module.*</c> in <c>parameters()</c> and <c>state_dict()</c>), and
/// disposing the wrapper disposes it, as TorchSharp does with any submodule.
/// </summary>
public sealed class CheckpointModule : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> _module;

    /// <summary>Wraps <paramref name="module"/>.</summary>
    /// <param name="module">The module to checkpoint.</param>
    /// <param name="options">Options of every checkpoint it runs; <see cref="CheckpointOptions.Default"/> when null.</param>
    public CheckpointModule(nn.Module<Tensor, Tensor> module, CheckpointOptions? options = null)
        : base(nameof(CheckpointModule))
    {
        ArgumentNullException.ThrowIfNull(module);
        _module = module;
        Options = options ?? CheckpointOptions.Default;
        register_module("module", module);
    }

    /// <summary>The wrapped module.</summary>
    public nn.Module<Tensor, Tensor> Module => _module;

    /// <summary>The options of every checkpoint this wrapper runs.</summary>
    public CheckpointOptions Options { get; }

    /// <summary>Runs the wrapped module as a checkpointed segment (<see cref="Checkpoint.Run(nn.Module{Tensor, Tensor}, Tensor, CheckpointOptions?)"/>).</summary>
    /// <param name="input">The input.</param>
    /// <returns>The wrapped module's output.</returns>
    public override Tensor forward(Tensor input) => Checkpoint.Run(_module, input, Options);
}
