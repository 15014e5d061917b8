// SPDX-License-Identifier: MIT
using BenchmarkDotNet.Attributes;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Benchmarks;

/// <summary>
/// Group 4: a chain of <see cref="Length"/> identity calls on 16 float32 elements, forward + backward +
/// grad reset per operation. The cost should grow linearly with the length; the summary reports ns per node.
/// </summary>
[MemoryDiagnoser]
public class ChainBenchmarks
{
    private Tensor _x = null!;

    /// <summary>Nodes in the chain.</summary>
    [Params(1_000, 10_000)]
    public int Length { get; set; }

    /// <summary>Creates the input.</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        Setup.Global();
        _x = Setup.Leaf(16);
    }

    /// <summary>Frees the input.</summary>
    [GlobalCleanup]
    public void GlobalCleanup() => _x.Dispose();

    /// <summary>A chain of libtorch clones.</summary>
    [Benchmark(Baseline = true, Description = "built-in clone")]
    public void BuiltIn()
    {
        using DisposeScope scope = NewDisposeScope();
        Tensor h = _x;
        for (int i = 0; i < Length; i++)
            h = h.clone();
        h.sum().backward();
        _x.grad!.zero_();
    }

    /// <summary>A chain of CustomAutograd identities.</summary>
    [Benchmark(Description = "CustomAutograd")]
    public void CustomAutograd()
    {
        using DisposeScope scope = NewDisposeScope();
        Tensor h = _x;
        for (int i = 0; i < Length; i++)
            h = Functions.Identity.Apply(h);
        h.sum().backward();
        _x.grad!.zero_();
    }

    /// <summary>A chain of TorchSharp 0.107 <c>SingleTensorFunction</c> identities.</summary>
    [Benchmark(Description = "TorchSharp Function")]
    public void TorchSharpFunction()
    {
        using DisposeScope scope = NewDisposeScope();
        Tensor h = _x;
        for (int i = 0; i < Length; i++)
            h = Functions.TorchSharpIdentity(h);
        h.sum().backward();
        _x.grad!.zero_();
    }
}
