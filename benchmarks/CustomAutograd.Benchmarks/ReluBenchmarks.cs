// SPDX-License-Identifier: MIT
using System;
using BenchmarkDotNet.Attributes;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Benchmarks;

/// <summary>The steps shared by both ReLU groups: forward + <c>sum().backward()</c> + grad reset.</summary>
public abstract class ReluBenchmarksBase
{
    private protected Tensor X = null!;

    /// <summary>Elements of the input.</summary>
    protected abstract long Elements { get; }

    /// <summary>Creates the input.</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        Setup.Global();
        X = Setup.Leaf(Elements);
    }

    /// <summary>Frees the input.</summary>
    [GlobalCleanup]
    public void GlobalCleanup() => X.Dispose();

    /// <summary>libtorch's own relu.</summary>
    [Benchmark(Baseline = true, Description = "built-in relu")]
    public void BuiltIn()
    {
        using DisposeScope scope = NewDisposeScope();
        X.relu().sum().backward();
        X.grad!.zero_();
        Setup.Sync();
    }

    /// <summary>The ReLU as a CustomAutograd function.</summary>
    [Benchmark(Description = "CustomAutograd")]
    public void CustomAutograd()
    {
        using DisposeScope scope = NewDisposeScope();
        Functions.Relu.Apply(X).sum().backward();
        X.grad!.zero_();
        Setup.Sync();
    }

    /// <summary>The ReLU as a TorchSharp 0.107 <c>SingleTensorFunction</c>.</summary>
    [Benchmark(Description = "TorchSharp Function")]
    public void TorchSharpFunction()
    {
        using DisposeScope scope = NewDisposeScope();
        Functions.TorchSharpRelu(X).sum().backward();
        X.grad!.zero_();
        Setup.Sync();
    }
}

/// <summary>Group 2a: the custom ReLU on 16 float32 elements (per-call overhead dominates).</summary>
[MemoryDiagnoser]
public class Relu16Benchmarks : ReluBenchmarksBase
{
    /// <inheritdoc/>
    protected override long Elements => 16;
}

/// <summary>
/// The ReLU on many elements (kernels dominate), with the same computation done by hand under no_grad as the floor
/// a custom function can reach.
/// </summary>
public abstract class ReluByHandBenchmarksBase : ReluBenchmarksBase
{
    /// <summary>
    /// The same work without autograd: forward clamp_min, sum, then the gradient of the sum (ones_like), the
    /// mask, and the accumulation into <c>x.grad</c>, then the grad reset.
    /// </summary>
    [Benchmark(Description = "by hand under no_grad")]
    public void ByHand()
    {
        using (NewDisposeScope())
        using (no_grad())
        {
            Tensor y = X.clamp_min(0);
            Tensor loss = y.sum();
            Tensor gradY = ones_like(y);
            Tensor grad = X.grad!;
            grad.add_(gradY.masked_fill(X < 0, 0));
            grad.zero_();
            GC.KeepAlive(loss);
        }
        Setup.Sync();
    }
}

/// <summary>Group 2b: the custom ReLU on 1M float32 elements, with the by-hand floor (CPU runs).</summary>
[MemoryDiagnoser]
public class Relu1MBenchmarks : ReluByHandBenchmarksBase
{
    /// <inheritdoc/>
    protected override long Elements => 1 << 20;
}

/// <summary>Group 2c: the custom ReLU on 16M float32 elements, with the by-hand floor (CUDA runs, <c>--device cuda</c>).</summary>
[MemoryDiagnoser]
public class Relu16MBenchmarks : ReluByHandBenchmarksBase
{
    /// <inheritdoc/>
    protected override long Elements => 1 << 24;
}
