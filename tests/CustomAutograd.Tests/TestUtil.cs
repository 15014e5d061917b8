// SPDX-License-Identifier: MIT
using System;
using System.Threading;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Shared functions and assertions.</summary>
internal static class TestUtil
{
    internal static readonly UnaryFunction Relu = AutogradFunction.Create(
        "TestReLU",
        (ctx, x) =>
        {
            ctx.SaveForBackward(x);
            return x.clamp_min(0);
        },
        (ctx, g) => g.masked_fill(ctx.SavedTensors[0]! < 0, 0));

    internal static readonly UnaryFunction Sigmoid = AutogradFunction.Create(
        "TestSigmoid",
        (ctx, x) =>
        {
            Tensor y = x.sigmoid();
            ctx.SaveForBackward(y);
            return y;
        },
        (ctx, g) =>
        {
            Tensor y = ctx.SavedTensors[0]!;
            return g * y * (1 - y);
        });

    internal static readonly BinaryFunction MatMul = AutogradFunction.Create(
        "TestMatMul",
        (ctx, a, b) =>
        {
            ctx.SaveForBackward(a, b);
            return a.mm(b);
        },
        (ctx, g) =>
        {
            Tensor a = ctx.SavedTensors[0]!, b = ctx.SavedTensors[1]!;
            return (g.mm(b.t()), a.t().mm(g));
        });

    /// <summary>(a, b) -> (a + b, a * b).</summary>
    internal static readonly MultiFunction SumAndProduct = AutogradFunction.CreateMulti(
        "TestSumAndProduct",
        (ctx, xs) =>
        {
            ctx.SaveForBackward(xs[0], xs[1]);
            return new[] { xs[0]! + xs[1]!, xs[0]! * xs[1]! };
        },
        (ctx, gs) =>
        {
            Tensor a = ctx.SavedTensors[0]!, b = ctx.SavedTensors[1]!;
            return new[] { gs[0]! + gs[1]! * b, gs[0]! + gs[1]! * a };
        });

    internal static void AssertClose(Tensor actual, Tensor expected, double rtol = 1e-5, double atol = 1e-6)
    {
        Assert.That(actual.shape, Is.EqualTo(expected.shape), "shape");
        Assert.That(actual.dtype, Is.EqualTo(expected.dtype), "dtype");
        bool close = actual.allclose(expected, rtol, atol);
        Assert.That(close, Is.True, () => $"values differ: max |diff| = {(actual - expected).abs().max().ToDouble()}");
    }

    /// <summary>Runs finalizers until the shim's live-node count is back to <paramref name="baseline"/> (or 10 s pass).</summary>
    internal static long WaitForLiveNodes(long baseline)
    {
        long live = AutogradDiagnostics.ReadCounters().LiveNodes;
        for (int i = 0; i < 100 && live > baseline; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            live = AutogradDiagnostics.ReadCounters().LiveNodes;
            if (live > baseline)
                Thread.Sleep(100);
        }
        return live;
    }

    internal static Tensor Rand(long[] shape, ScalarType dtype, bool requiresGrad = true) =>
        torch.randn(shape, dtype: dtype, requires_grad: requiresGrad);
}
