// SPDX-License-Identifier: MIT
using System;
using BenchmarkDotNet.Attributes;
using static TorchSharp.torch;

namespace CustomAutograd.Benchmarks;

/// <summary>
/// Group 5: one training step of a real model, an MLP of 4 Linear layers of width 1024 with ReLU between them, batch
/// 256 (forward, squared-error loss, backward, SGD update, gradient reset), in both ways of resetting gradients. The
/// rows: built-in <c>linear</c> and <c>relu</c>; every Linear and ReLU a CustomAutograd function (as a first attempt
/// writes them: <see cref="Functions.Linear"/>, <see cref="Functions.Relu"/>); the same in TorchSharp's Function;
/// the same tensor work by hand under no_grad; and the recommended pattern (<see cref="Functions.FastLinear"/>,
/// <see cref="Functions.FastRelu"/>).
/// </summary>
[MemoryDiagnoser]
public class MlpBenchmarks
{
    /// <summary>Rows of the batch.</summary>
    public const int Batch = 256;

    /// <summary>Width of every layer.</summary>
    public const int Width = 1024;

    private static readonly Func<Tensor, Tensor, Tensor?, Tensor> BuiltInLinear = static (x, w, b) => nn.functional.linear(x, w, b);
    private static readonly Func<Tensor, Tensor> BuiltInRelu = static t => t.relu();
    private static readonly Func<Tensor, Tensor, Tensor?, Tensor> CustomLinear = static (x, w, b) => Functions.Linear.Apply(x, w, b);
    private static readonly Func<Tensor, Tensor> CustomRelu = static t => Functions.Relu.Apply(t);
    private static readonly Func<Tensor, Tensor, Tensor?, Tensor> TorchSharpLinear = Functions.TorchSharpLinear;
    private static readonly Func<Tensor, Tensor> TorchSharpRelu = Functions.TorchSharpRelu;
    private static readonly Func<Tensor, Tensor, Tensor?, Tensor> FastLinear = static (x, w, b) => Functions.FastLinear.Apply(x, w, b);
    private static readonly Func<Tensor, Tensor> FastRelu = static t => Functions.FastRelu.Apply(t);

    private Mlp _mlp = null!;

    /// <summary>How the step resets the gradients.</summary>
    [Params(GradReset.None, GradReset.Zero)]
    public GradReset Reset { get; set; }

    /// <summary>Creates the data and the parameters (the same for every row: same seed).</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        Setup.Global();
        _mlp = new Mlp(Batch, Width, Reset);
    }

    /// <summary>Frees the tensors.</summary>
    [GlobalCleanup]
    public void GlobalCleanup() => _mlp.Dispose();

    /// <summary>With libtorch's <c>linear</c> and <c>relu</c>.</summary>
    [Benchmark(Baseline = true, Description = "built-in linear, relu")]
    public void BuiltIn() => Step(BuiltInLinear, BuiltInRelu);

    /// <summary>Every Linear and ReLU a CustomAutograd function, written as a first attempt would.</summary>
    [Benchmark(Description = "CustomAutograd")]
    public void CustomAutograd() => Step(CustomLinear, CustomRelu);

    /// <summary>The same functions as TorchSharp 0.107 <c>SingleTensorFunction</c>s.</summary>
    [Benchmark(Description = "TorchSharp Function")]
    public void TorchSharpFunction() => Step(TorchSharpLinear, TorchSharpRelu);

    /// <summary>The CustomAutograd row's tensor work by hand under no_grad.</summary>
    [Benchmark(Description = "by hand under no_grad")]
    public void ByHand()
    {
        using (NewDisposeScope())
        {
            _mlp.BackwardByHand(Reset);
            _mlp.Update(Reset);
        }
        Setup.Sync();
    }

    /// <summary>CustomAutograd with the recommended Linear (addmm) and ReLU.</summary>
    [Benchmark(Description = "CustomAutograd, fast Linear")]
    public void CustomAutogradFast() => Step(FastLinear, FastRelu);

    private void Step(Func<Tensor, Tensor, Tensor?, Tensor> linear, Func<Tensor, Tensor> relu)
    {
        using (NewDisposeScope())
        {
            _mlp.Loss(linear, relu).backward();
            _mlp.Update(Reset);
        }
        Setup.Sync();
    }

    /// <summary>The gradients of one step's backward, for the correctness checks (not timed).</summary>
    internal static Tensor[] Gradients(int batch, int width, GradReset reset, string row)
    {
        using var mlp = new Mlp(batch, width, reset);
        using (NewDisposeScope())
        {
            switch (row)
            {
                case nameof(BuiltIn):
                    mlp.Loss(BuiltInLinear, BuiltInRelu).backward();
                    break;
                case nameof(CustomAutograd):
                    mlp.Loss(CustomLinear, CustomRelu).backward();
                    break;
                case nameof(TorchSharpFunction):
                    mlp.Loss(TorchSharpLinear, TorchSharpRelu).backward();
                    break;
                case nameof(ByHand):
                    mlp.BackwardByHand(reset);
                    break;
                case nameof(CustomAutogradFast):
                    mlp.Loss(FastLinear, FastRelu).backward();
                    break;
                default:
                    throw new ArgumentException(row, nameof(row));
            }
        }
        Tensor[] parameters = mlp.Parameters;
        var grads = new Tensor[parameters.Length];
        for (int i = 0; i < parameters.Length; i++)
        {
            using Tensor g = parameters[i].grad!;
            grads[i] = g.detach().clone();
        }
        return grads;
    }

    /// <summary>The rows <see cref="Gradients"/> knows.</summary>
    internal static readonly string[] Rows =
    {
        nameof(BuiltIn), nameof(CustomAutograd), nameof(TorchSharpFunction), nameof(ByHand), nameof(CustomAutogradFast),
    };
}
