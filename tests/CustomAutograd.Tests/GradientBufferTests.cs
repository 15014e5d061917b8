// SPDX-License-Identifier: MIT
using System;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>
/// Which buffer becomes a leaf's <c>.grad</c> (Note [stealable gradients] in native/src/node.cpp): as with libtorch's own
/// functions, a gradient that a Backward computed and that nothing else references becomes the leaf's <c>.grad</c>
/// without a copy; a gradient someone else can still see is copied.
/// </summary>
[TestFixture]
public sealed class GradientBufferTests
{
    private static IntPtr DataPtr(Tensor t)
    {
        using var storage = t.storage<float>();
        return storage.data_ptr();
    }

    /// <summary>A Linear written the fast way, recording the buffers its Backward hands back.</summary>
    private static TernaryFunction Linear(Action<Tensor?, Tensor?, Tensor?> seen) => AutogradFunction.Create(
        "BufferLinear",
        (ctx, input, weight, bias) =>
        {
            ctx.SaveForBackward(input, weight);
            return bias is null ? input.mm(weight.t()) : torch.addmm(bias, input, weight.t(), 1, 1);
        },
        (ctx, g) =>
        {
            Tensor input = ctx.SavedTensors[0]!, weight = ctx.SavedTensors[1]!;
            Tensor? gi = ctx.NeedsInputGrad[0] ? g.mm(weight) : null;
            Tensor? gw = ctx.NeedsInputGrad[1] ? g.t().mm(input) : null;
            Tensor? gb = ctx.NeedsInputGrad[2] ? g.sum(0L) : null;
            seen(gi, gw, gb);
            return (gi, gw, gb);
        });

    [Test]
    public void Linear_LeavesWithoutGrad_TakeTheBuffersTheBackwardComputed()
    {
        using var scope = NewDisposeScope();
        IntPtr gwPtr = IntPtr.Zero, gbPtr = IntPtr.Zero;
        TernaryFunction linear = Linear((gi, gw, gb) =>
        {
            gwPtr = DataPtr(gw!);
            gbPtr = DataPtr(gb!);
        });
        Tensor x = torch.randn(8, 5);
        Tensor w = torch.randn(new long[] { 4, 5 }, requires_grad: true);
        Tensor b = torch.randn(new long[] { 4 }, requires_grad: true);

        linear.Apply(x, w, b).pow(2).sum().backward();

        Assert.That(gwPtr, Is.Not.EqualTo(IntPtr.Zero));
        Assert.That(DataPtr(w.grad!), Is.EqualTo(gwPtr), "w.grad is the buffer the Backward computed");
        Assert.That(DataPtr(b.grad!), Is.EqualTo(gbPtr), "b.grad is the buffer the Backward computed");
        using (var _ = NewDisposeScope())
        {
            Tensor expectedW = (2 * (x.mm(w.t()) + b)).t().mm(x);
            TestUtil.AssertClose(w.grad!, expectedW);
        }
    }

    [Test]
    public void Linear_SecondStep_AccumulatesIntoTheSameGrad()
    {
        using var scope = NewDisposeScope();
        TernaryFunction linear = Linear((_, _, _) => { });
        Tensor x = torch.randn(8, 5);
        Tensor w = torch.randn(new long[] { 4, 5 }, requires_grad: true);

        linear.Apply(x, w).sum().backward();
        Tensor first = w.grad!.clone();
        IntPtr buffer = DataPtr(w.grad!);
        linear.Apply(x, w).sum().backward();

        Assert.That(DataPtr(w.grad!), Is.EqualTo(buffer), "the second gradient is added in place");
        TestUtil.AssertClose(w.grad!, 2 * first);
    }

    [Test]
    public void Linear_GradsSetToNoneEachStep_EveryStepTakesTheNewBuffer()
    {
        using var scope = NewDisposeScope();
        IntPtr gwPtr = IntPtr.Zero;
        TernaryFunction linear = Linear((_, gw, _) => gwPtr = DataPtr(gw!));
        Tensor x = torch.randn(16, 32);
        Tensor w = torch.randn(new long[] { 1024, 32 }, requires_grad: true);  // 128 KiB gradient
        for (int step = 0; step < 3; step++)
        {
            using var stepScope = NewDisposeScope();
            linear.Apply(x, w).sum().backward();
            Assert.That(DataPtr(w.grad!), Is.EqualTo(gwPtr), $"step {step}");
            w.grad = null;
        }
    }

    [Test]
    public void BackwardReturningACapturedTensor_IsCopied_TheCapturedTensorStaysUntouched()
    {
        using var scope = NewDisposeScope();
        Tensor fixedGrad = torch.ones(3);
        UnaryFunction f = AutogradFunction.Create("Fixed", (ctx, x) => x.clone(), (ctx, g) => fixedGrad);
        Tensor a = torch.zeros(new long[] { 3 }, requires_grad: true);

        f.Apply(a).sum().backward();
        Assert.That(DataPtr(a.grad!), Is.Not.EqualTo(DataPtr(fixedGrad)), "its owner can still see it: copied");
        a.grad!.add_(5);
        f.Apply(a).sum().backward();

        TestUtil.AssertClose(fixedGrad, torch.ones(3));
        TestUtil.AssertClose(a.grad!, torch.full(3, 7f));
    }

    [Test]
    public void IncomingGradientPassedThroughToALeaf_BecomesItsGrad_AndAnotherBranchIsUnaffected()
    {
        using var scope = NewDisposeScope();
        IntPtr incoming = IntPtr.Zero;
        UnaryFunction pass = AutogradFunction.Create("Pass", (ctx, x) => x.clone(), (ctx, g) =>
        {
            incoming = DataPtr(g);
            return g;
        });
        Tensor a = torch.randn(new long[] { 6 }, requires_grad: true);
        Tensor c = torch.randn(new long[] { 6 }, requires_grad: true);

        // a's gradient and c's come from one MulBackward each; the pass-through hands a's straight on.
        (pass.Apply(a) * 3 + c * 2).sum().backward();

        Assert.That(DataPtr(a.grad!), Is.EqualTo(incoming));
        TestUtil.AssertClose(a.grad!, torch.full(6, 3f));
        TestUtil.AssertClose(c.grad!, torch.full(6, 2f));
    }
}
