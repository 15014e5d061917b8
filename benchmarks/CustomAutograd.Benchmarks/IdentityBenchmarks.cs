// SPDX-License-Identifier: MIT
using BenchmarkDotNet.Attributes;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Benchmarks;

/// <summary>
/// Group 1: the identity on 16 float32 elements, forward + backward + grad reset per operation. No user op
/// differs between the rows (all clone), so the differences are the custom-function machinery alone. Runs on CUDA
/// too (<c>--device cuda</c>).
/// </summary>
[MemoryDiagnoser]
public class IdentityBenchmarks
{
    private Tensor _x = null!;

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

    /// <summary>libtorch's own clone.</summary>
    [Benchmark(Baseline = true, Description = "built-in clone")]
    public void BuiltIn()
    {
        using DisposeScope scope = NewDisposeScope();
        _x.clone().sum().backward();
        _x.grad!.zero_();
        Setup.Sync();
    }

    /// <summary>The identity as a CustomAutograd function.</summary>
    [Benchmark(Description = "CustomAutograd")]
    public void CustomAutograd()
    {
        using DisposeScope scope = NewDisposeScope();
        Functions.Identity.Apply(_x).sum().backward();
        _x.grad!.zero_();
        Setup.Sync();
    }

    /// <summary>The identity as a TorchSharp 0.107 <c>SingleTensorFunction</c>.</summary>
    [Benchmark(Description = "TorchSharp Function")]
    public void TorchSharpFunction()
    {
        using DisposeScope scope = NewDisposeScope();
        Functions.TorchSharpIdentity(_x).sum().backward();
        _x.grad!.zero_();
        Setup.Sync();
    }
}
