// SPDX-License-Identifier: MIT
using System;
using BenchmarkDotNet.Attributes;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Benchmarks;

/// <summary>
/// Group 3: one training step of the tutorial's two-layer network (N=64, D_in=1000, H=100, D_out=10,
/// learning rate 1e-6): forward, squared-error loss, backward, gradient-descent update, grad reset. Only
/// the ReLU differs between the rows.
/// </summary>
[MemoryDiagnoser]
public class TwoLayerNetBenchmarks
{
    private const int N = 64, DIn = 1000, H = 100, DOut = 10;
    private const double LearningRate = 1e-6;

    private static readonly Func<Tensor, Tensor> BuiltInRelu = static t => t.relu();
    private static readonly Func<Tensor, Tensor> CustomRelu = static t => Functions.Relu.Apply(t);
    private static readonly Func<Tensor, Tensor> TorchSharpRelu = Functions.TorchSharpRelu;

    private Tensor _x = null!, _y = null!, _w1 = null!, _w2 = null!;

    /// <summary>Creates the data and the weights (the same for every row: same seed).</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        Setup.Global();
        _x = randn(new long[] { N, DIn }, dtype: ScalarType.Float32, device: Setup.Device);
        _y = randn(new long[] { N, DOut }, dtype: ScalarType.Float32, device: Setup.Device);
        _w1 = Setup.Leaf(DIn, H);
        _w2 = Setup.Leaf(H, DOut);
    }

    /// <summary>Frees the tensors.</summary>
    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _x.Dispose();
        _y.Dispose();
        _w1.Dispose();
        _w2.Dispose();
    }

    /// <summary>With libtorch's relu.</summary>
    [Benchmark(Baseline = true, Description = "built-in relu")]
    public void BuiltIn() => Step(BuiltInRelu);

    /// <summary>With the CustomAutograd ReLU.</summary>
    [Benchmark(Description = "CustomAutograd")]
    public void CustomAutograd() => Step(CustomRelu);

    /// <summary>With the TorchSharp 0.107 <c>SingleTensorFunction</c> ReLU.</summary>
    [Benchmark(Description = "TorchSharp Function")]
    public void TorchSharpFunction() => Step(TorchSharpRelu);

    private void Step(Func<Tensor, Tensor> relu)
    {
        using DisposeScope scope = NewDisposeScope();
        Tensor yPred = relu(_x.mm(_w1)).mm(_w2);
        Tensor loss = (yPred - _y).pow(2).sum();
        loss.backward();
        using (no_grad())
        {
            Tensor g1 = _w1.grad!, g2 = _w2.grad!;
            _w1.sub_(LearningRate * g1);
            _w2.sub_(LearningRate * g2);
            g1.zero_();
            g2.zero_();
        }
    }
}
