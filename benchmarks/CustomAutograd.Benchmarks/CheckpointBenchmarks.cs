// SPDX-License-Identifier: MIT
using System;
using System.Linq;
using BenchmarkDotNet.Attributes;
using CustomAutograd.Examples;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CustomAutograd.Benchmarks;

/// <summary>
/// Group 6: one training step (forward, MSE loss, backward, SGD update, grad reset) of the residual MLP of
/// examples/Checkpointing, scaled down so that BenchmarkDotNet can repeat it: <see cref="Blocks"/> blocks of width
/// <see cref="Width"/>, batch <see cref="Batch"/>, float32. The rows differ only in what is checkpointed; the step-time
/// ratio to no checkpointing is what checkpointing costs (the example measures the memory it saves).
/// </summary>
[MemoryDiagnoser]
public class CheckpointBenchmarks
{
    /// <summary>Model size: activations dominate the weights, as in the example.</summary>
    public const int Blocks = 24, Width = 256, Batch = 1024;

    /// <summary>round(sqrt(Blocks)), as the example's third configuration.</summary>
    public static readonly int Segments = (int)Math.Round(Math.Sqrt(Blocks));

    private Sequential _model = null!, _wrapped = null!;
    private Tensor _input = null!, _target = null!;
    private SGD _optimizer = null!;

    /// <summary>Creates the model (the same weights for every row), its wrapped form, the data and the optimizer.</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        Setup.Global();
        ResidualBlock[] blocks = Enumerable.Range(0, Blocks).Select(_ => new ResidualBlock(Width, CPU)).ToArray();
        _model = nn.Sequential(blocks);
        _wrapped = nn.Sequential(blocks.Select(b => new CheckpointModule(b)));
        _input = randn(Batch, Width);
        _target = randn(Batch, Width);
        _optimizer = optim.SGD(_model.parameters(), 1e-3);
    }

    /// <summary>Frees the model and the data.</summary>
    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _optimizer.Dispose();
        _model.Dispose();   // the wrapped model holds the same blocks
        _input.Dispose();
        _target.Dispose();
    }

    /// <summary>Every activation kept for the backward.</summary>
    [Benchmark(Baseline = true, Description = "no checkpointing")]
    public void BuiltIn() => Step(_model.call);

    /// <summary>Every block in a <see cref="CheckpointModule"/>.</summary>
    [Benchmark(Description = "every block")]
    public void EveryBlock() => Step(_wrapped.call);

    /// <summary><see cref="Checkpoint.Sequential(Sequential, int, Tensor, CheckpointOptions?)"/> with round(sqrt(Blocks)) segments.</summary>
    [Benchmark(Description = "sqrt(blocks) segments")]
    public void SqrtSegments() => Step(x => Checkpoint.Sequential(_model, Segments, x));

    private void Step(Func<Tensor, Tensor> forward)
    {
        using DisposeScope scope = NewDisposeScope();
        _optimizer.zero_grad();
        nn.functional.mse_loss(forward(_input), _target).backward();
        _optimizer.step();
    }
}
