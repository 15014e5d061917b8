// SPDX-License-Identifier: MIT
using System;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Failures in Forward, Backward and arguments surface as .NET exceptions; the process goes on.</summary>
[TestFixture]
public sealed class ErrorTests
{
    private static readonly UnaryFunction Throwing = AutogradFunction.Create(
        "ThrowingBackward",
        (ctx, x) => x * 2,
        (ctx, g) => throw new InvalidOperationException("x"));

    [Test]
    public void Backward_ThrowsInvalidOperation_BackwardRaisesWithFunctionNameTypeAndMessage()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.ones(2, requires_grad: true);
        Exception? e = Assert.Catch(() => Throwing.Apply(x).sum().backward());
        Assert.That(e!.Message, Does.Contain("ThrowingBackward").And.Contain("System.InvalidOperationException").And.Contain(": x"));
    }

    [Test]
    public void Backward_Throws100Rounds_EachRaisesAndLaterCallsAreCorrect()
    {
        Tensor w = torch.ones(3, requires_grad: true);
        for (int round = 0; round < 100; round++)
        {
            using var scope = NewDisposeScope();
            Exception? e = Assert.Catch(() => Throwing.Apply(w).sum().backward());
            Assert.That(e!.Message, Does.Contain("ThrowingBackward"));

            // A working function on the same thread right after.
            Tensor x = torch.tensor(new[] { -1.0, 2.0 }, requires_grad: true);
            TestUtil.Relu.Apply(x).sum().backward();
            TestUtil.AssertClose(x.grad!, torch.tensor(new[] { 0.0, 1.0 }));
        }
        Assert.That(w.grad, Is.Null);
    }

    [Test]
    public void Backward_Throws_OriginalExceptionReachableThroughHelper()
    {
        using var scope = NewDisposeScope();
        var payload = new PayloadException(42);
        UnaryFunction f = AutogradFunction.Create("Payload", (ctx, x) => x * 1, (ctx, g) => throw payload);
        Exception? e = Assert.Catch(() => f.Apply(torch.ones(1, requires_grad: true)).sum().backward());

        Assert.That(AutogradFunction.TryGetBackwardException(e!, out Exception? original), Is.True);
        Assert.That(original, Is.SameAs(payload));
        Assert.That(((PayloadException)original!).Code, Is.EqualTo(42));
    }

    [Test]
    public void Forward_Throws_SameExceptionPropagatesAndNoNodeLeft()
    {
        using var scope = NewDisposeScope();
        var thrown = new ArithmeticException("forward failed");
        UnaryFunction f = AutogradFunction.Create("ThrowingForward", (ctx, x) => throw thrown, (ctx, g) => g);
        long live = AutogradDiagnostics.ReadNativeCounters().LiveNodes;
        long created = AutogradDiagnostics.ReadNativeCounters().NodesCreated;

        ArithmeticException? e = Assert.Throws<ArithmeticException>(() => f.Apply(torch.ones(2, requires_grad: true)));

        Assert.That(e, Is.SameAs(thrown));
        Assert.That(AutogradDiagnostics.ReadNativeCounters().NodesCreated, Is.EqualTo(created));
        Assert.That(AutogradDiagnostics.ReadNativeCounters().LiveNodes, Is.EqualTo(live));
        Assert.That(torch.is_grad_enabled(), Is.True, "grad mode restored after the failing forward");
    }

    [Test]
    public void Backward_WrongNumberOfGradients_ErrorNamesFunctionAndCounts()
    {
        using var scope = NewDisposeScope();
        MultiFunction f = AutogradFunction.CreateMulti(
            "TooMany", (ctx, xs) => new[] { xs[0] * 1 }, (ctx, gs) => new[] { gs[0], gs[0] });
        Exception? e = Assert.Catch(() => f.Apply(torch.ones(2, requires_grad: true))[0].sum().backward());
        Assert.That(e!.Message, Does.Contain("TooMany").And.Contain("expected 1, got 2"));
    }

    [Test]
    public void Forward_NullsAnEntryOfItsInputsArray_RefusedWithClearError()
    {
        // The array forms hand the inputs array to the Forward; changing which entries are null would leave the
        // native call with fewer handles than it expects.
        using var scope = NewDisposeScope();
        MultiFunction f = AutogradFunction.CreateMulti(
            "ScratchInputs",
            (ctx, xs) =>
            {
                Tensor y = xs[0] + xs[1];
                xs[1] = null!;
                return new[] { y };
            },
            (ctx, gs) => new[] { gs[0], gs[0] });
        var e = Assert.Throws<CustomAutogradException>(() => f.Apply(torch.ones(2, requires_grad: true), torch.ones(2, requires_grad: true)));
        Assert.That(e!.Message, Does.Contain("ScratchInputs").And.Contain("changed the inputs array"));
    }

    [Test]
    public void Backward_ExtraTrailingNulls_Accepted()
    {
        using var scope = NewDisposeScope();
        MultiFunction f = AutogradFunction.CreateMulti(
            "TrailingNulls", (ctx, xs) => new[] { xs[0] * 3 }, (ctx, gs) => new[] { gs[0]! * 3, null, null });
        Tensor x = torch.ones(2, requires_grad: true);
        f.Apply(x)[0].sum().backward();
        TestUtil.AssertClose(x.grad!, torch.full(2, 3f));
    }

    [Test]
    public void Backward_WrongShape_ErrorNamesInputIndexAndBothShapes()
    {
        using var scope = NewDisposeScope();
        BinaryFunction f = AutogradFunction.Create(
            "BadShape", (ctx, a, b) => a + b, (ctx, g) => (g, torch.ones(5)));
        Tensor a = torch.ones(2, 3, requires_grad: true);
        Tensor b = torch.ones(2, 3, requires_grad: true);
        Exception? e = Assert.Catch(() => f.Apply(a, b).sum().backward());
        Assert.That(e!.Message, Does.Contain("BadShape").And.Contain("input 1").And.Contain("[5]").And.Contain("[2, 3]"));
    }

    [Test]
    public void Backward_ReturnsDisposedTensor_ErrorNamesInput()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create(
            "ReturnsDisposed",
            (ctx, x) => x * 2,
            (ctx, g) =>
            {
                Tensor r = g * 2;
                r.Dispose();
                return r;
            });
        Exception? e = Assert.Catch(() => f.Apply(torch.ones(2, requires_grad: true)).sum().backward());
        Assert.That(e!.Message, Does.Contain("ReturnsDisposed").And.Contain("input 0").And.Contain("disposed"));
    }

    [Test]
    public void Backward_Float64GradientForFloat32Input_CastByLibtorch()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create("CastsGradient", (ctx, x) => x * 2, (ctx, g) => g.to_type(ScalarType.Float64) * 2);
        Tensor x = torch.ones(2, requires_grad: true);
        f.Apply(x).sum().backward();
        Assert.That(x.grad!.dtype, Is.EqualTo(ScalarType.Float32));
        TestUtil.AssertClose(x.grad!, torch.full(2, 2f));
    }

    [Test]
    public void Create_NullOrEmptyName_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => AutogradFunction.Create(null!, (ctx, x) => x, (ctx, g) => g));
        Assert.Throws<ArgumentException>(() => AutogradFunction.Create("", (ctx, x) => x, (ctx, g) => g));
    }

    [Test]
    public void Create_NullDelegates_Throw()
    {
        Assert.Throws<ArgumentNullException>(() => AutogradFunction.Create("F", null!, (ctx, g) => g));
        Assert.Throws<ArgumentNullException>(() => AutogradFunction.Create("F", (ctx, x) => x, null!));
        Assert.Throws<ArgumentNullException>(() => AutogradFunction.CreateMulti("F", null!, (ctx, g) => g));
    }

    [Test]
    public void Apply_NullOrDisposedInput_ThrowsBeforeAnythingRuns()
    {
        bool ran = false;
        UnaryFunction f = AutogradFunction.Create("Guarded", (ctx, x) => { ran = true; return x.clone(); }, (ctx, g) => g);
        Assert.Throws<ArgumentNullException>(() => f.Apply(null!));
        Tensor t = torch.ones(1);
        t.Dispose();
        Assert.Throws<ObjectDisposedException>(() => f.Apply(t));
        Assert.That(ran, Is.False);
    }

    [Test]
    public void Forward_ReturnsNull_ClearError()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create("ReturnsNull", (ctx, x) => null!, (ctx, g) => g);
        CustomAutogradException? e = Assert.Throws<CustomAutogradException>(() => f.Apply(torch.ones(1, requires_grad: true)));
        Assert.That(e!.Message, Does.Contain("ReturnsNull").And.Contain("null"));
        Assert.That(e.FunctionName, Is.EqualTo("ReturnsNull"));
    }

    private sealed class PayloadException : Exception
    {
        public PayloadException(int code) : base("payload " + code) => Code = code;

        public int Code { get; }
    }
}
