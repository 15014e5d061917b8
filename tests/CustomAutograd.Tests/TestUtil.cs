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
    // TorchSharp 0.107 converts a number to a Scalar with a finalizer and does not keep it alive across the native
    // call, so with several threads allocating, a GC can free it mid-call ("Expected false to be true ... Scalar.h",
    // with or without this library). These functions run on many threads in the tests, so their Scalars are kept
    // alive, as any multi-threaded TorchSharp code must (docs/user-guide.md, Threads).
    private static readonly Scalar Zero = 0.ToScalar();
    private static readonly Scalar One = 1.ToScalar();

    internal static readonly UnaryFunction Relu = TestFunctions.SavingInput(
        "TestReLU", x => x.clamp_min(Zero), (g, x) => g.masked_fill(x.lt(Zero), Zero));

    internal static readonly UnaryFunction Sigmoid = TestFunctions.SavingOutput(
        "TestSigmoid", x => x.sigmoid(), (g, y) => g * y * y.neg().add(One));

    internal static readonly BinaryFunction MatMul = TestFunctions.SavingInputs(
        "TestMatMul", (a, b) => a.mm(b), (g, a, b) => (g.mm(b.t()), a.t().mm(g)));

    /// <summary>(a, b) -> (a + b, a * b).</summary>
    internal static readonly MultiFunction SumAndProduct = TestFunctions.SumAndProduct(
        "TestSumAndProduct", (gs, a, b) => new[] { gs[0]! + gs[1]! * b, gs[0]! + gs[1]! * a });

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
