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

        Assert.That(AutogradDiagnostics.TryGetBackwardException(e!, out Exception? original), Is.True);
        Assert.That(original, Is.SameAs(payload));
        Assert.That(((PayloadException)original!).Code, Is.EqualTo(42));
    }

    [Test]
    public void Forward_Throws_SameExceptionPropagatesAndNoNodeLeft()
    {
        using var scope = NewDisposeScope();
        var thrown = new ArithmeticException("forward failed");
        UnaryFunction f = AutogradFunction.Create("ThrowingForward", (ctx, x) => throw thrown, (ctx, g) => g);
        long live = AutogradDiagnostics.ReadCounters().LiveNodes;
        long created = AutogradDiagnostics.ReadCounters().NodesCreated;

        ArithmeticException? e = Assert.Throws<ArithmeticException>(() => f.Apply(torch.ones(2, requires_grad: true)));

        Assert.That(e, Is.SameAs(thrown));
        Assert.That(AutogradDiagnostics.ReadCounters().NodesCreated, Is.EqualTo(created));
        Assert.That(AutogradDiagnostics.ReadCounters().LiveNodes, Is.EqualTo(live));
        Assert.That(torch.is_grad_enabled(), Is.True, "grad mode restored after the failing forward");
    }

    [Test]
    public void Backward_WrongNumberOfGradients_ErrorNamesFunctionAndCounts()
    {
        using var scope = NewDisposeScope();
        MultiFunction f = AutogradFunction.CreateMulti(
            "TooMany", (ctx, xs) => new[] { xs[0]! * 1 }, (ctx, gs) => new[] { gs[0], gs[0] });
        Exception? e = Assert.Catch(() => f.Apply(torch.ones(2, requires_grad: true))[0].sum().backward());
        Assert.That(e!.Message, Does.Contain("TooMany").And.Contain("expected 1, got 2"));
    }

    [Test]
    public void Backward_ExtraTrailingNulls_Accepted()
    {
        using var scope = NewDisposeScope();
        MultiFunction f = AutogradFunction.CreateMulti(
            "TrailingNulls", (ctx, xs) => new[] { xs[0]! * 3 }, (ctx, gs) => new[] { gs[0]! * 3, null, null });
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

    [Test]
    public void Backward_NaNGradientUnderAnomalyMode_ErrorNamesTheFunctionAsPyTorchDoes()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create(
            "MakesNaN", (ctx, x) => x * 2, (ctx, g) => g * double.NaN);
        Tensor x = torch.ones(3, dtype: ScalarType.Float64, requires_grad: true);
        Exception? e;
        using (var stderr = new CapturedStderr())
        {
            using (torch.autograd.detect_anomaly(check_nan: true))
                e = Assert.Catch(() => f.Apply(x).sum().backward());
            stderr.Dispose();
            // libtorch's anomaly mode prints the forward's trace as a warning; it is asserted here, not shown.
            Assert.That(stderr.Text, Does.Contain("Error detected in CSharpNode"));
        }
        Assert.That(e!.Message, Does.Contain("Function 'MakesNaN' returned nan values in its 0th output."));
        Assert.That(x.grad, Is.Null);

        // Without NaN checking the same gradient goes through, as in PyTorch.
        f.Apply(x).sum().backward();
        Assert.That(x.grad!.isnan().all().item<bool>(), Is.True);
    }

    [Test]
    public void Backward_ComplexGradientForRealInput_ErrorNamesFunctionInputAndDtypes()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create(
            "ComplexGrad", (ctx, x) => x * 2, (ctx, g) => torch.complex(g, g));
        Exception? e = Assert.Catch(() => f.Apply(torch.ones(2, requires_grad: true)).sum().backward());
        Assert.That(e!.Message, Does.Contain("ComplexGrad").And.Contain("input 0").And.Contain("complex (ComplexFloat32)")
                                    .And.Contain("real (Float32)"));
    }

    [Test]
    public void Backward_RealGradientForComplexInput_CastByLibtorch()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create("RealGrad", (ctx, x) => x.abs(), (ctx, g) => g.expand(2));
        Tensor z = torch.complex(torch.ones(2), torch.zeros(2)).requires_grad_(true);
        f.Apply(z).sum().backward();
        Assert.That(z.grad!.dtype, Is.EqualTo(ScalarType.ComplexFloat32));
    }

    [Test]
    public void Forward_DisposesATensorItSaved_ErrorNamesThePosition()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create(
            "DisposesSaved",
            (ctx, x) =>
            {
                Tensor t = x * 2;
                ctx.SaveForBackward(x, t);
                t.Dispose();
                return x * 3;
            },
            (ctx, g) => g * 3);
        var e = Assert.Throws<CustomAutogradException>(() => f.Apply(torch.ones(2, requires_grad: true)));
        Assert.That(e!.Message, Does.Contain("DisposesSaved").And.Contain("the tensor saved at position 1 was disposed before backward"));
    }

    [Test]
    public void Forward_DisposesATensorSavedByName_ErrorNamesTheName()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create(
            "DisposesNamed",
            (ctx, x) =>
            {
                Tensor t = x * 2;
                ctx.SaveForBackward("twice", t);
                t.Dispose();
                return x * 3;
            },
            (ctx, g) => g * 3);
        var e = Assert.Throws<CustomAutogradException>(() => f.Apply(torch.ones(2, requires_grad: true)));
        Assert.That(e!.Message, Does.Contain("DisposesNamed").And.Contain("the tensor saved as 'twice' was disposed before backward"));
    }

    [Test]
    public void Forward_DisposesItsInput_ErrorNamesTheInput()
    {
        using var scope = NewDisposeScope();
        BinaryFunction f = AutogradFunction.Create(
            "DisposesInput",
            (ctx, a, b) =>
            {
                Tensor y = a + b;
                b.Dispose();
                return y;
            },
            (ctx, g) => (g, g));
        var e = Assert.Throws<CustomAutogradException>(() => f.Apply(torch.ones(2, requires_grad: true), torch.ones(2)));
        Assert.That(e!.Message, Does.Contain("DisposesInput").And.Contain("input 1 was disposed inside the Forward"));
    }

    private static readonly object?[] TensorStates =
    {
        new object[] { "a tensor" },
        new object[] { "a tuple holding a tensor" },
        new object[] { "an array of tensors" },
        new object[] { "a list of tensors" },
    };

    [TestCaseSource(nameof(TensorStates))]
    public void SetState_TensorOrCollectionHoldingOne_RefusedWithAdviceToSave(string kind)
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create(
            "KeepsTensorInState",
            (ctx, x) =>
            {
                Tensor y = x * 2;
                object state = kind switch
                {
                    "a tensor" => y,
                    "a tuple holding a tensor" => (1.5, y),
                    "an array of tensors" => new[] { x, y },
                    _ => new System.Collections.Generic.List<Tensor> { y },
                };
                ctx.SetState(state);
                return y;
            },
            (ctx, g) => g * 2);
        var e = Assert.Throws<ArgumentException>(() => f.Apply(torch.ones(2, requires_grad: true)));
        Assert.That(e!.Message, Does.Contain("KeepsTensorInState").And.Contain("SaveForBackward"));
    }

    [Test]
    public void SetState_ObjectsWithoutTensors_Accepted()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create(
            "KeepsNumbers",
            (ctx, x) =>
            {
                ctx.SetState((Scale: 2.0, Shape: new long[] { 2 }, Names: new[] { "a" }));
                return x * 2;
            },
            (ctx, g) => g * ctx.GetState<(double Scale, long[] Shape, string[] Names)>().Scale);
        Tensor x = torch.ones(2, requires_grad: true);
        f.Apply(x).sum().backward();
        TestUtil.AssertClose(x.grad!, torch.full(2, 2f));
    }

    [Test]
    public void SavedTensors_IndexPastTheEnd_ErrorSaysHowManyWereSaved()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create(
            "ReadsTooFar",
            (ctx, x) =>
            {
                ctx.SaveForBackward(x);
                return x * 2;
            },
            (ctx, g) => g * ctx.SavedTensors[2]!);
        Exception? e = Assert.Catch(() => f.Apply(torch.ones(2, requires_grad: true)).sum().backward());
        Assert.That(e!.Message, Does.Contain("ReadsTooFar").And.Contain("SavedTensors[2] does not exist").And.Contain("saved 1 tensor (index 0)"));
    }

    private sealed class CacheArgs
    {
        public double Scale { get; init; } = 2;

        public Tensor? Cache;
    }

    private sealed record RecordArgs(double Scale)
    {
        public Tensor? Output { get; set; }
    }

    [Test]
    public void Args_FieldHoldsAnOutput_RefusedWithAdviceToSave()
    {
        using var scope = NewDisposeScope();
        UnaryFunction<CacheArgs> f = AutogradFunction.CreateWithArgs<CacheArgs>(
            "CachesOutput",
            (ctx, x, args) => args.Cache = x * args.Scale,
            (ctx, g, args) => g * args.Scale);
        var e = Assert.Throws<CustomAutogradException>(() => f.Apply(torch.ones(2, requires_grad: true), new CacheArgs()));
        Assert.That(e!.Message, Does.Contain("CachesOutput").And.Contain("holds output 0").And.Contain("Cache").And.Contain("SaveForBackward"));
    }

    [Test]
    public void Args_RecordPropertyHoldsAnOutput_RefusedNamingTheProperty()
    {
        using var scope = NewDisposeScope();
        MultiFunction<RecordArgs> f = AutogradFunction.CreateMultiWithArgs<RecordArgs>(
            "RecordCachesOutput",
            (ctx, xs, args) =>
            {
                Tensor y = xs[0]! * args.Scale;
                args.Output = y;
                return new[] { xs[0]! * 1, y };
            },
            (ctx, gs, args) => new[] { gs[0]! + gs[1]! * args.Scale });
        var e = Assert.Throws<CustomAutogradException>(() => f.Apply(new[] { torch.ones(2, requires_grad: true) }, new RecordArgs(2)));
        Assert.That(e!.Message, Does.Contain("holds output 1").And.Contain("Output"));
    }

    [Test]
    public void Args_HoldATensorThatIsNotAnOutput_Accepted()
    {
        using var scope = NewDisposeScope();
        Tensor mask = torch.tensor(new[] { 1f, 0f });
        UnaryFunction<CacheArgs> f = AutogradFunction.CreateWithArgs<CacheArgs>(
            "MaskInArgs",
            (ctx, x, args) => x * args.Cache!,
            (ctx, g, args) => g * args.Cache!);
        Tensor x = torch.ones(2, requires_grad: true);
        f.Apply(x, new CacheArgs { Cache = mask }).sum().backward();
        TestUtil.AssertClose(x.grad!, mask);
    }

    private sealed class PayloadException : Exception
    {
        public PayloadException(int code) : base("payload " + code) => Code = code;

        public int Code { get; }
    }
}
