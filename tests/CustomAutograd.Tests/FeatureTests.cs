// SPDX-License-Identifier: MIT
using System;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Typed non-tensor arguments, optional inputs, the safe Grad, higher order, once-differentiable, node locking.</summary>
[TestFixture]
public sealed class FeatureTests
{
    internal static readonly UnaryFunction<double> Scale = AutogradFunction.CreateWithArgs<double>(
        "Scale", (ctx, x, s) => x * s, (ctx, g, s) => g * s);

    /// <summary>x^3 with a Backward written in differentiable ops, so it can be differentiated again.</summary>
    internal static readonly UnaryFunction Cube = AutogradFunction.Create(
        "Cube",
        (ctx, x) =>
        {
            ctx.SaveForBackward(x);
            return x.pow(3);
        },
        (ctx, g) => g * 3 * ctx.SavedTensors[0]!.pow(2));

    [Test]
    public void CreateWithArgs_ScalarArgument_ReachesForwardAndBackward()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.ones(3, requires_grad: true);
        Tensor y = Scale.Apply(x, 4.0);
        y.sum().backward();
        TestUtil.AssertClose(y.detach(), torch.full(3, 4f));
        TestUtil.AssertClose(x.grad!, torch.full(3, 4f));
    }

    [Test]
    public void CreateMultiWithArgs_RecordArgumentAndOptionalNullInput_BiasSkipped()
    {
        using var scope = NewDisposeScope();
        MultiFunction<(double Alpha, bool Negate)> affine = AutogradFunction.CreateMultiWithArgs<(double Alpha, bool Negate)>(
            "Affine",
            (ctx, xs, a) =>
            {
                Tensor y = xs[0]! * a.Alpha;
                if (xs[1] is not null)
                    y = y + xs[1]!;
                return new[] { a.Negate ? -y : y };
            },
            (ctx, gs, a) =>
            {
                Tensor g = a.Negate ? -gs[0]! : gs[0]!;
                return new Tensor?[] { g * a.Alpha, ctx.NeedsInputGrad[1] ? g : null };
            });
        Tensor x = torch.ones(2, requires_grad: true);
        Tensor b = torch.ones(2, requires_grad: true);

        affine.Apply(new[] { x, b }, (2.0, true))[0].sum().backward();
        affine.Apply(new[] { x, null }, (3.0, false))[0].sum().backward();

        TestUtil.AssertClose(x.grad!, torch.full(2, 1f)); // -2 + 3
        TestUtil.AssertClose(b.grad!, torch.full(2, -1f));
    }

    [Test]
    public void Grad_CustomFunction_EqualsAnalyticalDerivative()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.tensor(new[] { 1.0, 2.0, -3.0 }, requires_grad: true);
        Tensor?[] g = Autograd.Grad(new[] { Cube.Apply(x).sum() }, new[] { x });
        TestUtil.AssertClose(g[0]!, 3 * x.detach().pow(2));
        Assert.That(x.grad, Is.Null, "Grad does not accumulate into .grad");
    }

    [Test]
    public void Grad_BackwardThrows_ExceptionWithOriginalAsInnerAndProcessContinues()
    {
        using var scope = NewDisposeScope();
        var thrown = new InvalidOperationException("grad-failure");
        UnaryFunction f = AutogradFunction.Create("FailsInGrad", (ctx, x) => x * 2, (ctx, g) => throw thrown);
        Tensor x = torch.ones(2, requires_grad: true);

        CustomAutogradException? e = Assert.Throws<CustomAutogradException>(
            () => Autograd.Grad(new[] { f.Apply(x).sum() }, new[] { x }));

        Assert.That(e!.Message, Does.Contain("FailsInGrad").And.Contain("grad-failure"));
        Assert.That(e.InnerException, Is.SameAs(thrown));
        TestUtil.AssertClose(Autograd.Grad(new[] { Scale.Apply(x, 2.0).sum() }, new[] { x })[0]!, torch.full(2, 2f));
    }

    [Test]
    public void Grad_LibtorchError_ExceptionNotCrash()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.ones(2, requires_grad: true);
        Tensor unrelated = torch.ones(2, requires_grad: true);
        CustomAutogradException? e = Assert.Throws<CustomAutogradException>(
            () => Autograd.Grad(new[] { Cube.Apply(x).sum() }, new[] { unrelated }));
        Assert.That(e!.Message, Does.Contain("allow_unused"));
        Tensor?[] unused = Autograd.Grad(new[] { Cube.Apply(x).sum() }, new[] { unrelated }, allowUnused: true);
        Assert.That(unused[0], Is.Null);
    }

    [Test]
    public void DoubleBackward_CreateGraphThroughCustomBackward_SecondDerivativeCorrect()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.tensor(new[] { 1.0, -2.0, 0.5 }, requires_grad: true);
        Tensor?[] first = Autograd.Grad(new[] { Cube.Apply(x).sum() }, new[] { x }, createGraph: true);
        Assert.That(first[0]!.requires_grad, Is.True);
        Tensor?[] second = Autograd.Grad(new[] { first[0]!.sum() }, new[] { x });
        TestUtil.AssertClose(second[0]!, 6 * x.detach());
    }

    [Test]
    public void OnceDifferentiable_DifferentiatingTheGradient_RaisesNamingFunction()
    {
        using var scope = NewDisposeScope();
        UnaryFunction once = AutogradFunction.Create(
            "OnceCube",
            (ctx, x) =>
            {
                ctx.SaveForBackward(x);
                return x.pow(3);
            },
            (ctx, g) =>
            {
                Assert.That(torch.is_grad_enabled(), Is.False, "once-differentiable Backward runs under no-grad");
                return g * 3 * ctx.SavedTensors[0]!.pow(2);
            },
            new AutogradFunctionOptions { OnceDifferentiable = true });
        Tensor x = torch.tensor(new[] { 1.0, 2.0 }, requires_grad: true);
        // As in PyTorch's test_once_differentiable: the output gradient itself requires grad.
        Tensor go = torch.ones(2, dtype: ScalarType.Float64, requires_grad: true);

        Tensor?[] first = Autograd.Grad(new[] { once.Apply(x) }, new[] { x }, new[] { go }, createGraph: true);
        TestUtil.AssertClose(first[0]!.detach(), 3 * x.detach().pow(2));
        CustomAutogradException? e = Assert.Throws<CustomAutogradException>(
            () => Autograd.Grad(new[] { first[0]!.sum() }, new[] { go }));
        Assert.That(e!.Message, Does.Contain("trying to differentiate twice a function that was marked once-differentiable")
                                   .And.Contain("OnceCube"));
    }

    [Test]
    public void OnceDifferentiable_BackwardReturnsCapturedTensor_TensorUntouchedAndNodesFreed()
    {
        Tensor constant = torch.full(2, 3.0, dtype: ScalarType.Float64);
        long baseline = TestUtil.WaitForLiveNodes(AutogradDiagnostics.ReadCounters().LiveNodes);
        using (NewDisposeScope())
        {
            UnaryFunction f = AutogradFunction.Create(
                "OnceReturnsConstant", (ctx, x) => x * 3, (ctx, g) => constant,
                new AutogradFunctionOptions { OnceDifferentiable = true });
            Tensor x = torch.ones(2, dtype: ScalarType.Float64, requires_grad: true);
            Tensor y = f.Apply(x);
            Tensor?[] g = Autograd.Grad(new[] { (y * y).sum() }, new[] { x }, createGraph: true);
            Assert.That(g[0]!.requires_grad, Is.True);
        }
        Assert.That(constant.requires_grad, Is.False, "the captured tensor must not be connected to the graph");
        Assert.That(constant.is_leaf, Is.True);
        Assert.That(TestUtil.WaitForLiveNodes(baseline), Is.EqualTo(baseline));
    }

    [Test]
    public void MarkNonDifferentiable_EqualValuedTensorThatIsNotAnOutput_Rejected()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create(
            "MarksLookAlike",
            (ctx, x) =>
            {
                Tensor y = x * 1;
                ctx.MarkNonDifferentiable(x * 1);   // same values as the output, but another tensor
                return y;
            },
            (ctx, g) => g);
        CustomAutogradException? e = Assert.Throws<CustomAutogradException>(() => f.Apply(torch.ones(3, requires_grad: true)));
        Assert.That(e!.Message, Does.Contain("MarksLookAlike").And.Contain("only outputs"));
    }

    [Test]
    public void MarkDirty_EqualValuedCloneOfInput_Rejected()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create(
            "DirtyLookAlike", (ctx, x) => { Tensor c = x.clone(); ctx.MarkDirty(c); return c; }, (ctx, g) => g);
        CustomAutogradException? e = Assert.Throws<CustomAutogradException>(() => f.Apply(torch.ones(3) * 2));
        Assert.That(e!.Message, Does.Contain("DirtyLookAlike").And.Contain("only input tensors"));
    }

    [Test]
    public void Backward_GradientForInputNotRequiringGrad_IgnoredAsByLibtorch()
    {
        using var scope = NewDisposeScope();
        BinaryFunction f = AutogradFunction.Create(
            "IgnoredGradient", (ctx, a, b) => a * b, (ctx, g) => (g * 2, torch.ones(7)));   // wrong shape for b
        Tensor a = torch.ones(3, requires_grad: true);
        Tensor b = torch.full(3, 2f);
        f.Apply(a, b).sum().backward();
        TestUtil.AssertClose(a.grad!, torch.full(3, 2f));
        Assert.That(b.grad, Is.Null);
    }

    [Test]
    public void OnceDifferentiable_WithoutCreateGraph_PlainGradient()
    {
        using var scope = NewDisposeScope();
        UnaryFunction once = AutogradFunction.Create(
            "OnceDouble", (ctx, x) => x * 2, (ctx, g) => g * 2, new AutogradFunctionOptions { OnceDifferentiable = true });
        Tensor x = torch.ones(3, requires_grad: true);
        once.Apply(x).sum().backward();
        TestUtil.AssertClose(x.grad!, torch.full(3, 2f));
    }

    [Test]
    public void MaterializeGradsOff_UnusedOutput_BackwardReceivesNull()
    {
        using var scope = NewDisposeScope();
        bool secondWasNull = false;
        MultiFunction f = AutogradFunction.CreateMulti(
            "NoMaterialize",
            (ctx, xs) =>
            {
                ctx.SetMaterializeGrads(false);
                return new[] { xs[0]! * 2, xs[0]! * 3 };
            },
            (ctx, gs) =>
            {
                secondWasNull = gs[1] is null;
                return new[] { gs[0]! * 2 };
            });
        Tensor x = torch.ones(2, requires_grad: true);
        f.Apply(x)[0].sum().backward();
        Assert.That(secondWasNull, Is.True);
        TestUtil.AssertClose(x.grad!, torch.full(2, 2f));
    }

    [Test]
    public void MarkDirty_InPlaceOnNonLeafInput_VersionBumpedAndGradientFlows()
    {
        using var scope = NewDisposeScope();
        UnaryFunction addOneInPlace = AutogradFunction.Create(
            "AddOneInPlace",
            (ctx, x) =>
            {
                x.add_(1);
                ctx.MarkDirty(x);
                return x;
            },
            (ctx, g) => g);
        Tensor leaf = torch.ones(3, requires_grad: true);
        Tensor a = leaf * 2;
        Tensor y = addOneInPlace.Apply(a);
        TestUtil.AssertClose(y.detach(), torch.full(3, 3f));
        (y * y).sum().backward();
        TestUtil.AssertClose(leaf.grad!, torch.full(3, 12f));
    }

    [Test]
    public void MarkDirty_LeafThatRequiresGrad_LibtorchErrorNamingFunction()
    {
        using var scope = NewDisposeScope();
        UnaryFunction inPlace = AutogradFunction.Create(
            "InPlaceOnLeaf", (ctx, x) => { x.mul_(2); ctx.MarkDirty(x); return x; }, (ctx, g) => g * 2);
        CustomAutogradException? e = Assert.Throws<CustomAutogradException>(() => inPlace.Apply(torch.ones(2, requires_grad: true)));
        Assert.That(e!.Message, Does.Contain("InPlaceOnLeaf").And.Contain("a leaf Variable that requires grad"));
    }

    [Test]
    public void MarkDirty_NotAnInput_ClearError()
    {
        using var scope = NewDisposeScope();
        UnaryFunction wrong = AutogradFunction.Create(
            "DirtyNotInput", (ctx, x) => { Tensor y = x * 2; ctx.MarkDirty(y); return y; }, (ctx, g) => g * 2);
        CustomAutogradException? e = Assert.Throws<CustomAutogradException>(() => wrong.Apply(torch.ones(2, requires_grad: true)));
        Assert.That(e!.Message, Does.Contain("DirtyNotInput").And.Contain("only input tensors"));
    }

    [Test]
    public void SharedRetainedGraph_TwoThreadsBackpropagate_NodeBackwardNeverConcurrentAndGradientsAddUp()
    {
        using var scope = NewDisposeScope();
        int active = 0, maxActive = 0;
        UnaryFunction slow = AutogradFunction.Create(
            "SlowBackward",
            (ctx, x) => x * 2,
            (ctx, g) =>
            {
                int now = Interlocked.Increment(ref active);
                int seen;
                while ((seen = Volatile.Read(ref maxActive)) < now && Interlocked.CompareExchange(ref maxActive, now, seen) != seen)
                {
                }
                Thread.Sleep(20);
                Interlocked.Decrement(ref active);
                return g * 2;
            });
        Tensor x = torch.ones(4, dtype: ScalarType.Float64, requires_grad: true);
        Tensor loss = slow.Apply(x).sum();
        const int threads = 4, rounds = 5;

        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ =>
        {
            for (int r = 0; r < rounds; r++)
                loss.backward(retain_graph: true);
        });

        Assert.That(maxActive, Is.EqualTo(1));
        TestUtil.AssertClose(x.grad!, torch.full(4, 2.0 * threads * rounds, dtype: ScalarType.Float64));
    }

    [Test]
    public void ReturnView_ViewOfInput_GradientFlows()
    {
        using var scope = NewDisposeScope();
        UnaryFunction firstRow = AutogradFunction.Create("FirstRow", (ctx, x) => x[0], (ctx, g) => torch.zeros(2, 3).index_put_(g, TensorIndex.Single(0)));
        Tensor x = torch.ones(2, 3, requires_grad: true);
        Tensor y = firstRow.Apply(x);
        Assert.That(y.shape, Is.EqualTo(new long[] { 3 }));
        (y * torch.tensor(new[] { 1f, 2f, 3f })).sum().backward();
        TestUtil.AssertClose(x.grad!, torch.tensor(new[] { 1f, 2f, 3f, 0f, 0f, 0f }).reshape(2, 3));
    }
}
