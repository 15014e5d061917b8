// SPDX-License-Identifier: MIT
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Benchmarks;

/// <summary>What every benchmark class does in its global setup.</summary>
internal static class Setup
{
    /// <summary>The seed of every input.</summary>
    public const long Seed = 7;

    /// <summary>One intra-op thread (the numbers compare per-call overheads, not parallel kernels) and a fixed seed.</summary>
    public static void Global()
    {
        torch.set_num_threads(1);
        torch.manual_seed(Seed);
    }

    /// <summary>A float32 leaf that requires grad and already has a (zero) gradient, so every step accumulates in place.</summary>
    /// <param name="shape">The shape.</param>
    /// <returns>The leaf, outside any dispose scope.</returns>
    public static Tensor Leaf(params long[] shape)
    {
        Tensor x = randn(shape, dtype: ScalarType.Float32, requires_grad: true);
        using (var scope = NewDisposeScope())
        {
            x.sum().backward();
            x.grad!.zero_();
        }
        return x;
    }
}
