// SPDX-License-Identifier: MIT
using System;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>
/// The array forms collect their inputs before the Forward runs (as PyTorch does): whatever a Forward does to the
/// array it receives, the gradients reach the tensors passed to Apply, in the caller's order.
/// </summary>
[TestFixture]
public sealed class InputCollectionTests
{
    // Each Forward below disturbs its array, then computes 3a + 2b from the caller's a and b; the Backward
    // returns (3g, 2g) in the caller's order.
    private static Tensor?[] Grads(Tensor?[] gs) => new[] { gs[0]! * 3, gs[0]! * 2 };

    private static Tensor[] Swap(Tensor?[] xs)
    {
        (xs[0], xs[1]) = (xs[1], xs[0]);
        return new[] { xs[1]! * 3 + xs[0]! * 2 };
    }

    private static Tensor[] ReplaceWithDetached(Tensor?[] xs)
    {
        xs[0] = xs[0]!.detach();
        xs[1] = xs[1]!.detach();
        return new[] { xs[0]! * 3 + xs[1]! * 2 };
    }

    private static Tensor[] NullOut(Tensor?[] xs)
    {
        Tensor y = xs[0]! * 3 + xs[1]! * 2;
        xs[0] = null;
        xs[1] = null;
        return new[] { y };
    }

    private static readonly Func<Tensor?[], Tensor[]>[] Disturbances = { Swap, ReplaceWithDetached, NullOut };

    private static (Tensor A, Tensor B) Leaves() =>
        (torch.tensor(new[] { 1.0, 2.0 }, requires_grad: true), torch.tensor(new[] { 5.0, 7.0 }, requires_grad: true));

    private static void AssertCallerOrder(Tensor a, Tensor b, Tensor y)
    {
        TestUtil.AssertClose(y, torch.tensor(new[] { 13.0, 20.0 }));
        y.sum().backward();
        TestUtil.AssertClose(a.grad!, torch.full(2, 3.0, dtype: ScalarType.Float64));
        TestUtil.AssertClose(b.grad!, torch.full(2, 2.0, dtype: ScalarType.Float64));
    }

    [TestCase(0, TestName = "CreateMulti_ForwardSwapsItsArray_GradientsReachTheCallersTensorsInOrder")]
    [TestCase(1, TestName = "CreateMulti_ForwardReplacesEntriesWithDetachedCopies_GradientsStillReachTheInputs")]
    [TestCase(2, TestName = "CreateMulti_ForwardNullsEntries_GradientsStillReachTheInputs")]
    public void CreateMulti_ForwardDisturbsItsArray_GradientsFollowTheCaller(int disturbance)
    {
        using var scope = NewDisposeScope();
        Func<Tensor?[], Tensor[]> disturb = Disturbances[disturbance];
        MultiFunction f = AutogradFunction.CreateMulti("Disturbing", (ctx, xs) => disturb(xs), (ctx, gs) => Grads(gs));
        (Tensor a, Tensor b) = Leaves();
        Tensor?[] inputs = { a, b };
        Tensor y = f.Apply(inputs)[0];
        Assert.That(inputs[0], Is.SameAs(a), "the caller's array is not the one the Forward changed");
        Assert.That(inputs[1], Is.SameAs(b));
        AssertCallerOrder(a, b, y);
    }

    [TestCase(0, TestName = "CreateMultiWithArgs_ForwardSwapsItsArray_GradientsReachTheCallersTensorsInOrder")]
    [TestCase(1, TestName = "CreateMultiWithArgs_ForwardReplacesEntriesWithDetachedCopies_GradientsStillReachTheInputs")]
    [TestCase(2, TestName = "CreateMultiWithArgs_ForwardNullsEntries_GradientsStillReachTheInputs")]
    public void CreateMultiWithArgs_ForwardDisturbsItsArray_GradientsFollowTheCaller(int disturbance)
    {
        using var scope = NewDisposeScope();
        Func<Tensor?[], Tensor[]> disturb = Disturbances[disturbance];
        MultiFunction<double> f = AutogradFunction.CreateMultiWithArgs<double>(
            "DisturbingWithArgs",
            (ctx, xs, scale) => Array.ConvertAll(disturb(xs), y => y * scale),
            (ctx, gs, scale) => Array.ConvertAll(Grads(gs), g => (Tensor?)(g! * scale)));
        (Tensor a, Tensor b) = Leaves();
        Tensor y = f.Apply(new[] { a, b }, 1.0)[0];
        AssertCallerOrder(a, b, y);
    }
}
