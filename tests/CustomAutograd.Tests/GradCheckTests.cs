// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using NUnit.Framework;
using TorchSharp;
using static CustomAutograd.Tests.GradCheckTestFunctions;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>GradCheck: correct functions pass, planted bugs fail with a precise report.</summary>
[TestFixture]
public sealed class GradCheckTests
{
    // ---------------------------------------------------------------- correct functions pass

    [Test]
    public void Check_ReluAwayFromZero_Passes()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.tensor(new double[,] { { 0.5, -1.2, 2.0 }, { -0.3, 0.8, -2.5 } }, dtype: ScalarType.Float64).requires_grad_(true);

        GradCheckResult result = GradCheck.Check(TestUtil.Relu, x);

        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.None));
    }

    [Test]
    public void Check_SigmoidCustomFunction_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(TestUtil.Sigmoid, Float64(new long[] { 3, 4 }));
        Assert.That(result.Passed, Is.True, result.ToString);
    }

    [Test]
    public void Check_TanhCustomFunction_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(Tanh, Float64(new long[] { 2, 3, 2 }));
        Assert.That(result.Passed, Is.True, result.ToString);
    }

    [Test]
    public void Check_MatMulCustomFunction_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(TestUtil.MatMul, Float64(new long[] { 3, 4 }), Float64(new long[] { 4, 2 }));
        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That(result.DifferentiableInputCount, Is.EqualTo(2));
    }

    [Test]
    public void Check_SoftmaxCustomFunction_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(Softmax, Float64(new long[] { 3, 5 }));
        Assert.That(result.Passed, Is.True, result.ToString);
    }

    [Test]
    public void Check_TwoInputsTwoOutputs_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(TestUtil.SumAndProduct, new[] { Float64(new long[] { 2, 3 }), Float64(new long[] { 2, 3 }) });
        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That(result.DifferentiableOutputCount, Is.EqualTo(2));
    }

    [Test]
    public void Check_FunctionReturningViewOfInput_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(TransposeView, Float64(new long[] { 2, 3 }));
        Assert.That(result.Passed, Is.True, result.ToString);
    }

    [Test]
    public void Check_PlainTorchSharpFunctionSeveralOutputs_Passes()
    {
        using var scope = NewDisposeScope();
        static Tensor[] Function(Tensor?[] xs) => new[] { xs[0]!.sin() * xs[1]!, (xs[0]! + xs[1]!).exp().sum(), xs[1]!.cumsum(0) };

        GradCheckResult result = GradCheck.Check(Function, new[] { Float64(new long[] { 4 }), Float64(new long[] { 4 }) });

        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That(result.OutputCount, Is.EqualTo(3));
    }

    [Test]
    public void Check_PlainLambdaOfOneTensor_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(x => (x * x).log1p().mean(), Float64(new long[] { 5 }));
        Assert.That(result.Passed, Is.True, result.ToString);
    }

    [Test]
    public void Check_NonContiguousInput_FunctionSeesItAndPasses()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 4, 3 }, requiresGrad: false).t().requires_grad_(true);
        var contiguity = new List<bool>();

        GradCheckResult result = GradCheck.Check(t =>
        {
            contiguity.Add(t.is_contiguous());
            return TestUtil.Sigmoid.Apply(t);
        }, x);

        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That(contiguity, Is.Not.Empty.And.All.False, "every evaluation sees the caller's (transposed) layout");
    }

    [Test]
    public void Check_SlicedInputWithStorageOffset_Passes()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 5, 6 }, requiresGrad: false)[TensorIndex.Slice(1, 4), TensorIndex.Slice(0, 6, 2)].requires_grad_(true);
        Assert.That(x.is_contiguous(), Is.False);

        GradCheckResult result = GradCheck.Check(Tanh, x, new GradCheckOptions { ReturnJacobians = true });

        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That(result.Jacobians[0].Rows, Is.EqualTo(9));
    }

    [Test]
    public void Check_ZeroSizeInput_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(xs => new[] { TestUtil.Sigmoid.Apply(xs[0]!), xs[1]!.sin() },
                                                 new[] { Float64(new long[] { 0, 3 }), Float64(new long[] { 2 }) });
        Assert.That(result.Passed, Is.True, result.ToString);
    }

    [Test]
    public void Check_ScalarInputAndOutput_PassesWithOneByOneJacobian()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.tensor(0.7, dtype: ScalarType.Float64).requires_grad_(true);

        GradCheckResult result = GradCheck.Check(t => Tanh.Apply(t * t), x, new GradCheckOptions { ReturnJacobians = true });

        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That((result.Jacobians[0].Rows, result.Jacobians[0].Columns), Is.EqualTo((1, 1)));
        double expected = 2 * 0.7 * (1 - Math.Pow(Math.Tanh(0.49), 2));
        Assert.That(result.Jacobians[0].Analytical(0, 0), Is.EqualTo(expected).Within(1e-12));
    }

    [Test]
    public void Check_InputWithoutRequiresGrad_IsNotChecked()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new long[] { 3, 3 }, requiresGrad: false);
        Tensor b = Float64(new long[] { 3, 3 });

        // The planted bug is in a's gradient only.
        GradCheckResult onlyB = GradCheck.Check(MatMulTransposedGrad, a, b);
        GradCheckResult both = GradCheck.Check(MatMulTransposedGrad, a.detach().requires_grad_(true), b, NoRaise);

        Assert.That(onlyB.Passed, Is.True, onlyB.ToString);
        Assert.That(onlyB.DifferentiableInputCount, Is.EqualTo(1));
        Assert.That(both.Passed, Is.False);
        Assert.That(both.InputIndex, Is.EqualTo(0));
    }

    [Test]
    public void Check_CallerTensors_AreNotModified()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 3, 2 });
        Tensor before = x.detach().clone();

        GradCheck.Check(Tanh, x);

        Assert.That(x.detach().allclose(before, rtol: 0, atol: 0), Is.True);
        Assert.That(x.grad, Is.Null, "the check does not accumulate into .grad");
        Assert.That(x.requires_grad, Is.True);
    }

    [Test]
    public void Check_IntegerOutputNextToDifferentiableOne_IsSkipped()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(xs => new[] { xs[0]!.argmax(), xs[0]!.sin() }, new[] { Float64(new long[] { 4 }) });
        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That(result.DifferentiableOutputCount, Is.EqualTo(1));
    }

    [Test]
    public void Check_ReturnJacobians_GivesKnownJacobian()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new[] { 1.0, -2.0 });

        GradCheckResult result = GradCheck.Check(t => t * 3, x, new GradCheckOptions { ReturnJacobians = true });

        Assert.That(result.Jacobians, Has.Count.EqualTo(1));
        double[,] analytical = result.Jacobians[0].GetAnalytical();
        double[,] numerical = result.Jacobians[0].GetNumerical();
        Assert.That(analytical, Is.EqualTo(new double[,] { { 3, 0 }, { 0, 3 } }));
        Assert.That(numerical[0, 0], Is.EqualTo(3).Within(1e-8));
        Assert.That(numerical[1, 0], Is.EqualTo(0).Within(1e-12));
        Assert.That(result.Jacobians[0].Numerical(1, 1), Is.EqualTo(3).Within(1e-8));
    }

    [Test]
    public void Check_FastModeCorrectFunction_Passes()
    {
        using var scope = NewDisposeScope();
        var options = new GradCheckOptions { FastMode = true, Seed = 3 };
        GradCheckResult result = GradCheck.Check(TestUtil.MatMul, Float64(new long[] { 8, 6 }), Float64(new long[] { 6, 7 }), options);
        Assert.That(result.Passed, Is.True, result.ToString);
    }

    [Test]
    public void Check_CheckGradDtypesOnCorrectFunction_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(Tanh, Float64(new long[] { 3 }), new GradCheckOptions { CheckGradDtypes = true });
        Assert.That(result.Passed, Is.True, result.ToString);
    }

    // ---------------------------------------------------------------- planted bugs fail precisely

    [Test]
    public void Check_SignError_ReportNamesElementAndBothValues()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new double[,] { { 0.5, -1.0 }, { 2.0, 0.3 } });
        double s = 1 / (1 + Math.Exp(-0.3));
        double expected = s * (1 - s);   // the largest derivative: the worst element is x[1, 1]

        GradCheckResult result = GradCheck.Check(SigmoidSignError, x, NoRaise);

        Assert.That(result.Passed, Is.False);
        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.JacobianMismatch));
        Assert.That(result.InputIndex, Is.EqualTo(0));
        Assert.That(result.OutputIndex, Is.EqualTo(0));
        GradCheckMismatch mismatch = result.FirstMismatch!;
        Assert.That(mismatch.InputElementIndex, Is.EqualTo(new long[] { 1, 1 }));
        Assert.That(mismatch.OutputElementIndex, Is.EqualTo(new long[] { 1, 1 }));
        Assert.That(mismatch.Numerical, Is.EqualTo(expected).Within(1e-8));
        Assert.That(mismatch.Analytical, Is.EqualTo(-expected).Within(1e-12));
        Assert.That(mismatch.MismatchedCount, Is.EqualTo(4), "the four diagonal elements");
        string report = result.ToString();
        Assert.That(report, Does.Contain("Jacobian mismatch for output 0 with respect to input 0"));
        Assert.That(report, Does.Contain("d output 0[1, 1] / d input 0[1, 1]"));
        Assert.That(report, Does.Contain("numerical:  0.2444583"));
        Assert.That(report, Does.Contain("analytical: -0.2444583"));
    }

    [Test]
    public void Check_WrongScale_ReportsDoubledValue()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new[] { 0.1, -0.7, 1.5 });
        double expected = 1 - Math.Tanh(0.1) * Math.Tanh(0.1);

        GradCheckResult result = GradCheck.Check(TanhWrongScale, x, NoRaise);

        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.JacobianMismatch));
        GradCheckMismatch mismatch = result.FirstMismatch!;
        Assert.That(mismatch.InputElementIndex, Is.EqualTo(new long[] { 0 }));
        Assert.That(mismatch.OutputElementIndex, Is.EqualTo(new long[] { 0 }));
        Assert.That(mismatch.Numerical, Is.EqualTo(expected).Within(1e-8));
        Assert.That(mismatch.Analytical, Is.EqualTo(2 * expected).Within(1e-12));
        Assert.That(result.ToString(), Does.Contain("d output 0[0] / d input 0[0]"));
    }

    [Test]
    public void Check_TransposedGradient_ReportsMismatchForFirstInputOnly()
    {
        using var scope = NewDisposeScope();
        var bValues = new double[,] { { 1.0, 2.0, -3.0 }, { 0.5, -1.5, 4.0 }, { -2.5, 3.5, 0.25 } };
        Tensor a = Float64(new long[] { 3, 3 });
        Tensor b = Float64(bValues);

        GradCheckResult result = GradCheck.Check(MatMulTransposedGrad, a, b, NoRaise);

        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.JacobianMismatch));
        Assert.That(result.Mismatches, Has.Count.EqualTo(1), "b's gradient is right");
        Assert.That(result.InputIndex, Is.EqualTo(0));
        Assert.That(result.OutputIndex, Is.EqualTo(0));
        // d y[i, j] / d a[i, l] = b[l, j]; the planted backward gives b[j, l].
        GradCheckMismatch mismatch = result.FirstMismatch!;
        long i = mismatch.OutputElementIndex[0], j = mismatch.OutputElementIndex[1];
        Assert.That(mismatch.InputElementIndex[0], Is.EqualTo(i));
        long l = mismatch.InputElementIndex[1];
        Assert.That(mismatch.Numerical, Is.EqualTo(bValues[l, j]).Within(1e-8));
        Assert.That(mismatch.Analytical, Is.EqualTo(bValues[j, l]).Within(1e-12));
        Assert.That(result.ToString(), Does.Contain($"d output 0[{i}, {j}] / d input 0[{i}, {l}]"));
    }

    [Test]
    public void Check_GradientForWrongInput_ReportsBothInputs()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new[] { 1.0, 2.0, 3.0 });
        Tensor b = Float64(new[] { -4.0, 0.5, 6.0 });

        GradCheckResult result = GradCheck.Check(MulSwappedGrads, a, b, NoRaise);

        Assert.That(result.Mismatches, Has.Count.EqualTo(2));
        GradCheckMismatch first = result.Mismatches[0], second = result.Mismatches[1];
        Assert.That((first.OutputIndex, first.InputIndex), Is.EqualTo((0, 0)));
        Assert.That(first.InputElementIndex, Is.EqualTo(new long[] { 1 }));
        Assert.That(first.Numerical, Is.EqualTo(0.5).Within(1e-8), "d(a*b)/da = b");
        Assert.That(first.Analytical, Is.EqualTo(2.0), "the planted backward gives a");
        Assert.That((second.OutputIndex, second.InputIndex), Is.EqualTo((0, 1)));
        Assert.That(second.InputElementIndex, Is.EqualTo(new long[] { 0 }));
        Assert.That(second.Numerical, Is.EqualTo(1.0).Within(1e-8));
        Assert.That(second.Analytical, Is.EqualTo(-4.0));
        Assert.That(result.ToString(), Does.Contain("Also mismatched: output 0 w.r.t. input 1"));
    }

    [Test]
    public void Check_MissingGradientOfOneOutput_ReportsThatOutput()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new[] { 1.0, 2.0 });
        Tensor b = Float64(new[] { 3.0, -5.0 });

        GradCheckResult result = GradCheck.Check(SumAndProductMissingContribution, new[] { a, b }, NoRaise);

        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.JacobianMismatch));
        Assert.That(result.Mismatches, Has.Count.EqualTo(1));
        Assert.That(result.OutputIndex, Is.EqualTo(1));
        Assert.That(result.InputIndex, Is.EqualTo(0));
        GradCheckMismatch mismatch = result.FirstMismatch!;
        Assert.That(mismatch.OutputElementIndex, Is.EqualTo(new long[] { 1 }));
        Assert.That(mismatch.InputElementIndex, Is.EqualTo(new long[] { 1 }));
        Assert.That(mismatch.Numerical, Is.EqualTo(-5.0).Within(1e-8));
        Assert.That(mismatch.Analytical, Is.EqualTo(0.0));
        string report = result.ToString();
        Assert.That(report, Does.Contain("Jacobian mismatch for output 1 with respect to input 0"));
        Assert.That(report, Does.Contain("d output 1[1] / d input 0[1]"));
        Assert.That(report, Does.Contain("numerical:  -5"));
        Assert.That(report, Does.Contain("analytical: 0"));
    }

    [Test]
    public void Check_NullGradientForUsedInput_ReportsZeroAnalytical()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new[] { 0.25, -3.0 });
        Tensor b = Float64(new[] { 1.0, 2.0 });

        GradCheckResult result = GradCheck.Check(MulNullGradForB, a, b, NoRaise);

        Assert.That(result.Mismatches, Has.Count.EqualTo(1));
        Assert.That(result.InputIndex, Is.EqualTo(1));
        GradCheckMismatch mismatch = result.FirstMismatch!;
        Assert.That(mismatch.InputElementIndex, Is.EqualTo(new long[] { 1 }));
        Assert.That(mismatch.Numerical, Is.EqualTo(-3.0).Within(1e-8), "d(a*b)/db = a");
        Assert.That(mismatch.Analytical, Is.EqualTo(0.0));
        Assert.That(result.ToString(), Does.Contain("d output 0[1] / d input 1[1]"));
    }

    [Test]
    public void Check_FastModeSignError_FailsWithElementReport()
    {
        using var scope = NewDisposeScope();
        var options = new GradCheckOptions { FastMode = true, RaiseException = false, Seed = 11 };

        GradCheckResult result = GradCheck.Check(SigmoidSignError, Float64(new long[] { 6, 5 }), options);

        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.JacobianMismatch));
        GradCheckMismatch m = result.FirstMismatch!;
        Assert.That(m.ProjectedNumerical, Is.Not.Null);
        Assert.That(m.ProjectedAnalytical, Is.EqualTo(-m.ProjectedNumerical!.Value).Within(1e-6));
        Assert.That(m.InputElementIndex, Is.EqualTo(m.OutputElementIndex), "a sigmoid's Jacobian is diagonal");
        Assert.That(m.Analytical, Is.EqualTo(-m.Numerical).Within(1e-6));
        Assert.That(m.MismatchedCount, Is.EqualTo(30));
        Assert.That(result.ToString(), Does.Contain("Fast mode projections"));
    }

    [Test]
    public void Check_DefaultOptionsOnFailure_ThrowsWithResult()
    {
        using var scope = NewDisposeScope();
        GradCheckException e = Assert.Throws<GradCheckException>(() => GradCheck.Check(TanhWrongScale, Float64(new long[] { 3 })))!;
        Assert.That(e.Result, Is.Not.Null);
        Assert.That(e.Result!.FailureKind, Is.EqualTo(GradCheckFailureKind.JacobianMismatch));
        Assert.That(e.Message, Is.EqualTo(e.Result.ToString()));
    }

    [Test]
    public void Check_BackwardThrows_ReportsBackwardFailedWithOriginal()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(DoubleThrowing, Float64(new long[] { 2 }), NoRaise);

        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.BackwardFailed));
        Assert.That(result.OutputIndex, Is.EqualTo(0));
        Assert.That(result.Exception, Is.InstanceOf<CustomAutogradException>());
        Assert.That(result.Exception!.InnerException, Is.InstanceOf<InvalidOperationException>());
        Assert.That(result.ToString(), Does.Contain("planted failure").And.Contain("GcDoubleThrowing"));
    }

    [Test]
    public void Check_NoisyBackward_FailsReentranceUnlessTolerated()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 3 });

        GradCheckResult strict = GradCheck.Check(DoubleNoisy, x, NoRaise);
        GradCheckResult tolerant = GradCheck.Check(DoubleNoisy, x, new GradCheckOptions { NondetTol = 1e-6 });

        Assert.That(strict.FailureKind, Is.EqualTo(GradCheckFailureKind.BackwardNotReentrant), strict.ToString);
        Assert.That(strict.InputIndex, Is.EqualTo(0));
        Assert.That(strict.ToString(), Does.Contain("not reentrant"));
        Assert.That(tolerant.Passed, Is.True, tolerant.ToString);
    }

    [Test]
    public void Check_BackwardNotMultipliedByGradOutput_Fails()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(DoubleNotMultiplied, Float64(new long[] { 3 }), NoRaise);
        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.BackwardNotMultipliedByGradOutput), result.ToString);
        Assert.That(result.InputIndex, Is.EqualTo(0));
    }

    [Test]
    public void Check_OutputsDetachedFromGraph_FailsNonZeroNumericalGradient()
    {
        using var scope = NewDisposeScope();
        GradCheckResult detached = GradCheck.Check(x => x.detach() * 2, Float64(new long[] { 3 }), NoRaise);
        GradCheckResult constant = GradCheck.Check(x => x.detach().sign(), Float64(new[] { 0.5, -2.0 }), NoRaise);

        Assert.That(detached.FailureKind, Is.EqualTo(GradCheckFailureKind.NonZeroNumericalGradient));
        Assert.That(detached.InputIndex, Is.EqualTo(0));
        Assert.That(constant.Passed, Is.True, constant.ToString);
    }

    // ---------------------------------------------------------------- undefined output gradients

    [Test]
    public void Check_BackwardCrashingOnMissingGradient_FailsUndefinedGradCheck()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 3 });

        GradCheckResult result = GradCheck.Check(DoubleNullUnsafe, x, NoRaise);
        GradCheckResult skipped = GradCheck.Check(DoubleNullUnsafe, x, new GradCheckOptions { CheckUndefinedGrad = false });

        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.UndefinedGradNotSupported));
        Assert.That(AutogradDiagnostics.TryGetBackwardException(result.Exception!, out Exception? original), Is.True);
        Assert.That(original, Is.InstanceOf<NullReferenceException>());
        Assert.That(result.ToString(), Does.Contain("undefined").And.Contain("GcDoubleNullUnsafe"));
        Assert.That(skipped.Passed, Is.True, "the Jacobians themselves are right");
    }

    [Test]
    public void Check_NullSafeBackwardWithoutMaterializedGrads_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(SumAndProductNullSafe, new[] { Float64(new long[] { 2, 2 }), Float64(new long[] { 2, 2 }) });
        Assert.That(result.Passed, Is.True, result.ToString);
    }

    [Test]
    public void Check_BackwardCrashingWhenOneOutputGradientIsMissing_NamesThatOutput()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(SumAndProductHalfNullSafe, new[] { Float64(new long[] { 2 }), Float64(new long[] { 2 }) }, NoRaise);

        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.UndefinedGradNotSupported));
        Assert.That(result.OutputIndex, Is.EqualTo(0), "all missing passes; output 0 alone missing is tried first");
        Assert.That(result.FailureMessage, Does.Contain("the gradient of output 0 was undefined"));
    }

    [Test]
    public void Check_BackwardGivingNonZeroForMissingGradient_FailsUndefinedGradCheck()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(DoubleOnesWhenMissing, Float64(new long[] { 3 }), NoRaise);

        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.UndefinedGradNotSupported));
        Assert.That(result.Exception, Is.Null);
        Assert.That(result.InputIndex, Is.EqualTo(0));
        Assert.That(result.FailureMessage, Does.Contain("undefined or zero"));
    }

    // ---------------------------------------------------------------- inputs and precision

    [Test]
    public void Check_Float32Input_FlagsLowPrecision()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.randn(3, dtype: ScalarType.Float32, requires_grad: true);

        GradCheckResult result = GradCheck.Check(TestUtil.Sigmoid, x, NoRaise);
        GradCheckResult exact = GradCheck.Check(TestUtil.Sigmoid, Float64(new long[] { 3 }));

        Assert.That(result.LowPrecision, Is.True);
        Assert.That(result.Warnings, Has.Some.Contains("Float32"));
        Assert.That(result.ToString(), Does.Contain("Warning: input 0 requires grad and is Float32"));
        Assert.That(exact.LowPrecision, Is.False);
        Assert.That(exact.Warnings, Is.Empty);
    }

    [Test]
    public void Check_ComplexInput_ThrowsNotSupported()
    {
        using var scope = NewDisposeScope();
        Tensor z = torch.randn(3, dtype: ScalarType.ComplexFloat64, requires_grad: true);
        NotSupportedException e = Assert.Throws<NotSupportedException>(() => GradCheck.Check(t => t * 2, z))!;
        Assert.That(e.Message, Does.Contain("input 0 is complex"));
    }

    [Test]
    public void Check_NoInputRequiresGrad_ThrowsArgumentException()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 3 }, requiresGrad: false);
        ArgumentException e = Assert.Throws<ArgumentException>(() => GradCheck.Check(t => t * 2, x))!;
        Assert.That(e.Message, Does.Contain("at least one input tensor to require gradient"));
    }

    [Test]
    public void Check_ExpandedInput_ThrowsArgumentException()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 1, 3 }).expand(4, 3);
        ArgumentException e = Assert.Throws<ArgumentException>(() => GradCheck.Check(t => t * 2, x))!;
        Assert.That(e.Message, Does.Contain("stride 0"));
    }

    [Test]
    public void Check_InvalidOptions_Throw()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 2 });
        Assert.Throws<ArgumentOutOfRangeException>(() => GradCheck.Check(t => t * 2, x, new GradCheckOptions { Eps = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => GradCheck.Check(t => t * 2, x, new GradCheckOptions { Atol = -1 }));
    }

    [Test]
    public void Check_PassedResult_ReportSaysPassed()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(TestUtil.SumAndProduct, new[] { Float64(new long[] { 2 }), Float64(new long[] { 2 }, requiresGrad: false) });
        Assert.That(result.ToString(), Does.StartWith("GradCheck passed (slow mode): 1 of 2 inputs and 2 of 2 outputs differentiable."));
        Assert.That(result.Mismatches, Is.Empty);
        Assert.That(result.FirstMismatch, Is.Null);
    }
}

/// <summary>GradCheck frees what it creates: every graph node of every evaluation, on success and failure.</summary>
[TestFixture]
[NonParallelizable]
public sealed class GradCheckLifetimeTests
{
    [Test]
    public void Check_PassingAndFailingChecks_LeaveNoLiveNodesWithoutGarbageCollection()
    {
        long baseline = TestUtil.WaitForLiveNodes(AutogradDiagnostics.ReadCounters().LiveNodes);
        AutogradCounters before = AutogradDiagnostics.ReadCounters();
        using (var scope = NewDisposeScope())
        {
            Tensor a = Float64(new long[] { 2, 3 }), b = Float64(new long[] { 2, 3 });
            GradCheck.Check(TestUtil.SumAndProduct, new[] { a, b });
            GradCheck.Check(TestUtil.Sigmoid, a, new GradCheckOptions { FastMode = true });
            GradGradCheck.Check(Cube, a);
            GradCheck.Check(SumAndProductMissingContribution, new[] { a, b }, NoRaise);
            GradCheck.Check(DoubleNullUnsafe, a, NoRaise);
            GradGradCheck.Check(CubeWrongDoubleBackwardX, a, options: NoRaise);
            Assert.Throws<GradCheckException>(() => GradCheck.Check(TanhWrongScale, a));
        }

        AutogradCounters after = AutogradDiagnostics.ReadCounters();
        Assert.That(after.NodesCreated - before.NodesCreated, Is.GreaterThan(100), "the checks built many graphs");
        Assert.That(after.LiveNodes, Is.EqualTo(baseline));
        Assert.That(after.LiveSavedTensors, Is.EqualTo(before.LiveSavedTensors));
    }
}
